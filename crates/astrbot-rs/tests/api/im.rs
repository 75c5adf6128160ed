//! §5.1, §5.5 and §7.2: `POST /api/v1/im/message` (validation order, chain
//! errors, delivery to webchat history) and `GET /api/v1/im/bots`.

use astrbot_core::Store;
use astrbot_store::SqliteStore;
use fake_openai::Behaviour;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

const WEBCHAT_UMO: &str = "webchat:FriendMessage:open_api_test_session";

fn error(message: &str) -> Value {
    json!({"status": "error", "message": message, "data": null})
}

async fn send(app: &TestApp, key: &str, body: Value) -> Value {
    let (status, answer) = app.post_json("/api/v1/im/message", Some(key), body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

async fn im_key(app: &TestApp) -> String {
    app.create_key(&["im"]).await.0
}

#[tokio::test]
async fn a_null_message_is_missing_before_anything_else() {
    let app = spawn_app().await;
    let key = im_key(&app).await;

    let alone = send(&app, &key, json!({"message": null})).await;
    let with_bad_umo = send(&app, &key, json!({"message": null, "umo": "broken-umo"})).await;

    assert_eq!(alone, error("Missing key: message"));
    assert_eq!(with_bad_umo, error("Missing key: message"));
}

#[tokio::test]
async fn a_missing_or_empty_umo_is_reported() {
    let app = spawn_app().await;
    let key = im_key(&app).await;

    let missing = send(&app, &key, json!({"message": "hello"})).await;
    let empty = send(&app, &key, json!({"message": "hello", "umo": ""})).await;
    let null = send(&app, &key, json!({"message": "hello", "umo": null})).await;
    let no_message = send(&app, &key, json!({})).await;

    assert_eq!(missing, error("Missing key: umo"));
    assert_eq!(empty, error("Missing key: umo"));
    assert_eq!(null, error("Missing key: umo"));
    assert_eq!(no_message, error("Missing key: umo"));
}

#[tokio::test]
async fn a_malformed_umo_is_invalid() {
    let app = spawn_app().await;
    let key = im_key(&app).await;

    let mut answers = Vec::new();
    for umo in [
        "broken-umo",
        "webchat:x",
        "webchat:PrivateMessage:x",
        "webchat::x",
    ] {
        answers.push((
            umo,
            send(&app, &key, json!({"message": "hello", "umo": umo})).await,
        ));
    }

    for (umo, body) in answers {
        assert_eq!(body["status"], "error", "{umo}");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .starts_with("Invalid umo:"),
            "{umo}: {body}"
        );
        assert!(body["data"].is_null());
    }
}

#[tokio::test]
async fn a_platform_that_is_not_running_is_reported() {
    let app = spawn_app().await;
    let key = im_key(&app).await;

    let body = send(
        &app,
        &key,
        json!({"message": "hello", "umo": "platform-not-running:FriendMessage:x"}),
    )
    .await;

    assert_eq!(
        body,
        error("Bot not found or not running for platform: platform-not-running")
    );
}

#[tokio::test]
async fn the_platform_is_checked_before_the_message() {
    let app = spawn_app().await;
    let key = im_key(&app).await;
    let umo = "platform-not-running:GroupMessage:x";

    let empty = send(&app, &key, json!({"message": "", "umo": umo})).await;
    let object = send(&app, &key, json!({"message": {}, "umo": umo})).await;
    let parts = send(&app, &key, json!({"message": [1], "umo": umo})).await;
    let bad_umo_first = send(&app, &key, json!({"message": {}, "umo": "broken-umo"})).await;

    for body in [empty, object, parts] {
        assert_eq!(
            body,
            error("Bot not found or not running for platform: platform-not-running")
        );
    }
    assert!(bad_umo_first["message"]
        .as_str()
        .unwrap()
        .starts_with("Invalid umo:"));
}

#[tokio::test]
async fn a_string_message_to_webchat_is_sent() {
    let app = spawn_app().await;
    let key = im_key(&app).await;

    let response = app
        .client
        .post(app.url("/api/v1/im/message"))
        .header("X-API-Key", &key)
        .json(&json!({"umo": WEBCHAT_UMO, "message": "hello"}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let raw = response.text().await.unwrap();

    assert_eq!(status, StatusCode::OK);
    assert_eq!(raw, r#"{"status":"ok","message":null,"data":{}}"#);
}

#[tokio::test]
async fn the_session_part_of_a_umo_may_contain_colons() {
    let app = spawn_app().await;
    let key = im_key(&app).await;

    let body = send(
        &app,
        &key,
        json!({"umo": "webchat:OtherMessage:a:b:c", "message": "hi"}),
    )
    .await;

    assert_eq!(body, json!({"status": "ok", "message": null, "data": {}}));
}

#[tokio::test]
async fn an_empty_string_message_is_empty() {
    let app = spawn_app().await;
    let key = im_key(&app).await;

    let empty = send(&app, &key, json!({"umo": WEBCHAT_UMO, "message": ""})).await;
    let blank = send(&app, &key, json!({"umo": WEBCHAT_UMO, "message": "   "})).await;

    assert_eq!(empty, error("Message is empty"));
    assert_eq!(blank, error("Message is empty"));
}

#[tokio::test]
async fn a_message_that_is_neither_string_nor_list_is_refused() {
    let app = spawn_app().await;
    let key = im_key(&app).await;

    let mut answers = Vec::new();
    for message in [
        Some(json!({})),
        Some(json!({"type": "plain", "text": "x"})),
        Some(json!(5)),
        Some(json!(true)),
        None,
    ] {
        let body = match &message {
            Some(message) => json!({"umo": WEBCHAT_UMO, "message": message}),
            None => json!({"umo": WEBCHAT_UMO}),
        };
        answers.push((message, send(&app, &key, body).await));
    }

    for (message, body) in answers {
        assert_eq!(
            body,
            error("message must be a string or list"),
            "{message:?}"
        );
    }
}

#[tokio::test]
async fn chain_errors_are_reported_with_astrbots_messages() {
    let app = spawn_app().await;
    let key = im_key(&app).await;
    let cases = [
        (json!([1]), "message part must be an object".to_owned()),
        (json!(["text"]), "message part must be an object".to_owned()),
        (
            json!([{"type": "plain", "text": "ok"}, null]),
            "message part must be an object".to_owned(),
        ),
        (
            json!([{"type": "x"}]),
            "unsupported message part type: x".to_owned(),
        ),
        (
            json!([{"type": " at "}]),
            "unsupported message part type: at".to_owned(),
        ),
        (
            json!([{"type": "reply"}]),
            "reply part missing message_id".to_owned(),
        ),
        (
            json!([{"type": "image"}]),
            "image part missing attachment_id".to_owned(),
        ),
        (
            json!([{"type": "record"}]),
            "record part missing attachment_id".to_owned(),
        ),
        (
            json!([{"type": "video"}]),
            "video part missing attachment_id".to_owned(),
        ),
        (
            json!([{"type": "file"}]),
            "file part missing attachment_id".to_owned(),
        ),
        (
            json!([{"type": "image", "attachment_id": "no-such-attachment"}]),
            "attachment not found: no-such-attachment".to_owned(),
        ),
        (
            json!([{"type": "reply", "message_id": 1}]),
            "Message content is empty (reply only is not allowed)".to_owned(),
        ),
        (
            json!([]),
            "Message content is empty (reply only is not allowed)".to_owned(),
        ),
        (
            json!([{"type": "plain", "text": ""}]),
            "Message content is empty (reply only is not allowed)".to_owned(),
        ),
    ];

    let mut answers = Vec::new();
    for (message, _) in &cases {
        answers.push(send(&app, &key, json!({"umo": WEBCHAT_UMO, "message": message})).await);
    }

    for ((message, expected), body) in cases.iter().zip(answers) {
        assert_eq!(body, error(expected), "{message}");
    }
}

#[tokio::test]
async fn a_list_with_plain_text_and_a_reply_is_sent() {
    let app = spawn_app().await;
    let key = im_key(&app).await;

    let body = send(
        &app,
        &key,
        json!({"umo": WEBCHAT_UMO, "message": [
            {"type": "reply", "message_id": 7},
            {"type": " plain ", "text": " hello "},
        ]}),
    )
    .await;

    assert_eq!(body, json!({"status": "ok", "message": null, "data": {}}));
}

#[tokio::test]
async fn an_uploaded_attachment_can_be_sent() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["file", "im"]).await;
    let uploaded = app
        .upload(&key, "pic.png", "image/png", vec![0x89, b'P', b'N', b'G'])
        .await;
    let attachment_id = uploaded["data"]["attachment_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let as_image = send(
        &app,
        &key,
        json!({"umo": WEBCHAT_UMO, "message": [{"type": "image", "attachment_id": attachment_id}]}),
    )
    .await;
    let declared_as_file = send(
        &app,
        &key,
        json!({"umo": WEBCHAT_UMO, "message": [{"type": "file", "attachment_id": attachment_id}]}),
    )
    .await;

    assert_eq!(uploaded["status"], "ok", "{uploaded}");
    assert_eq!(
        as_image,
        json!({"status": "ok", "message": null, "data": {}})
    );
    assert_eq!(
        declared_as_file,
        json!({"status": "ok", "message": null, "data": {}})
    );
}

#[tokio::test]
async fn a_message_to_a_chat_session_lands_in_its_history() {
    let app = spawn_app_with(
        Behaviour {
            text: Some("bot answer".into()),
            ..Default::default()
        },
        |_| {},
    )
    .await;
    let (key, _) = app.create_key(&["chat", "im"]).await;
    let username = format!("user-{}", uuid::Uuid::new_v4().simple());
    let session_id = format!("session-{}", uuid::Uuid::new_v4().simple());
    let chat = app
        .chat(
            &key,
            json!({"message": "hi", "username": username, "session_id": session_id, "enable_streaming": false}),
        )
        .await;
    let store = SqliteStore::open(&app.data_dir().join("astrbot-rs.db"))
        .await
        .unwrap();
    let before = store
        .list_history("webchat", &session_id)
        .await
        .unwrap()
        .len();

    let body = send(
        &app,
        &key,
        json!({
            "umo": format!("webchat:FriendMessage:webchat!{username}!{session_id}"),
            "message": "proactive hello",
        }),
    )
    .await;
    let history = store.list_history("webchat", &session_id).await.unwrap();

    assert_eq!(chat.status, StatusCode::OK);
    assert_eq!(body, json!({"status": "ok", "message": null, "data": {}}));
    assert_eq!(history.len(), before + 1, "{history:?}");
    let last = history.last().unwrap();
    assert_eq!(last.platform_id, "webchat");
    assert_eq!(last.user_id, session_id);
    let text = serde_json::to_string(&last.content).unwrap();
    assert!(text.contains("proactive hello"), "{text}");
    assert_eq!(last.content["message"][0]["type"], "plain");
    assert_eq!(last.content["message"][0]["text"], "proactive hello");
}

#[tokio::test]
async fn bots_list_the_configured_platform_ids_without_webchat() {
    let app = spawn_app_with(Behaviour::default(), |config| {
        config["platform"] = json!([
            {"id": "qq-bot", "type": "aiocqhttp", "enable": true},
            {"id": "tg", "type": "telegram", "enable": false},
            {"id": "qq-bot", "type": "aiocqhttp"},
            {"id": ""},
            {"id": 5},
            {"type": "no-id"},
        ]);
    })
    .await;
    let key = im_key(&app).await;

    let (status, body) = app.get("/api/v1/im/bots", Some(&key)).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({"status": "ok", "message": null, "data": {"bot_ids": ["qq-bot", "tg"]}})
    );
}

#[tokio::test]
async fn bots_are_an_empty_list_on_a_fresh_config() {
    let app = spawn_app().await;
    let key = im_key(&app).await;

    let (_, body) = app.get("/api/v1/im/bots", Some(&key)).await;

    assert_eq!(
        body,
        json!({"status": "ok", "message": null, "data": {"bot_ids": []}})
    );
}

//! Chat platforms end to end: a fake OneBot v11 implementation (what NapCat
//! or Lagrange are) connects to the server's reverse WebSocket, and its
//! group and private messages get LLM answers back; proactive sends through
//! `/api/v1/im/message` reach it; `/api/v1/im/bots/status` reports it.

// The same fake the platforms crate tests its adapter with.
#[path = "../../../astrbot-platforms/tests/platforms/fake_onebot.rs"]
#[allow(dead_code)]
mod fake_onebot;

use fake_onebot::{free_port, Auth, FakeOneBot};
use fake_openai::Behaviour;
use serde_json::{json, Value};

use crate::helpers::*;

const TOKEN: &str = "onebot-secret";

async fn app_with_onebot() -> (TestApp, u16) {
    let port = free_port();
    let app = spawn_app_with(Behaviour::default(), |config| {
        config["platform"] = json!([{
            "id": "qq", "type": "aiocqhttp", "enable": true,
            "ws_reverse_host": "127.0.0.1", "ws_reverse_port": port,
            "ws_reverse_token": TOKEN,
        }]);
    })
    .await;
    (app, port)
}

fn message_event(kind: &str, target: i64, text: &str) -> Value {
    let mut event = json!({
        "time": 1700000000, "self_id": 10000, "post_type": "message",
        "message_type": kind, "sub_type": "normal", "message_id": 77,
        "user_id": 4242, "sender": {"user_id": 4242, "nickname": "Ann"},
        "message": [{"type": "text", "data": {"text": text}}],
    });
    if kind == "group" {
        event["group_id"] = json!(target);
    }
    event
}

fn action_text(action: &Value) -> String {
    action["params"]["message"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|segment| segment["type"] == "text")
        .filter_map(|segment| segment["data"]["text"].as_str())
        .collect()
}

#[tokio::test]
async fn a_group_message_with_the_wake_prefix_is_answered_in_that_group() {
    let (_app, port) = app_with_onebot().await;
    let mut onebot = FakeOneBot::connect(port, Auth::Bearer(TOKEN), "10000")
        .await
        .unwrap();

    onebot
        .send_event(message_event("group", 555, "/what is up"))
        .await;
    let action = onebot.next_action().await;
    onebot.answer(&action, 0, "").await;

    assert_eq!(action["action"], "send_group_msg");
    assert_eq!(action["params"]["group_id"], 555);
    assert_eq!(action_text(&action), "Echo: what is up");
}

#[tokio::test]
async fn group_chatter_without_a_wake_is_ignored_but_private_messages_are_answered() {
    let (app, port) = app_with_onebot().await;
    let mut onebot = FakeOneBot::connect(port, Auth::Bearer(TOKEN), "10000")
        .await
        .unwrap();

    onebot
        .send_event(message_event("group", 555, "just chatting"))
        .await;
    onebot
        .send_event(message_event("private", 0, "hi bot"))
        .await;
    let action = onebot.next_action().await;
    onebot.answer(&action, 0, "").await;

    assert_eq!(action["action"], "send_private_msg");
    assert_eq!(action["params"]["user_id"], 4242);
    assert_eq!(action_text(&action), "Echo: hi bot");
    let asked: Vec<String> = app
        .chat_requests()
        .iter()
        .map(|request| request["messages"].to_string())
        .collect();
    assert!(
        asked
            .iter()
            .all(|messages| !messages.contains("just chatting")),
        "{asked:?}"
    );
}

#[tokio::test]
async fn an_image_in_a_group_message_reaches_the_model() {
    let (app, port) = app_with_onebot().await;
    let mut onebot = FakeOneBot::connect(port, Auth::Bearer(TOKEN), "10000")
        .await
        .unwrap();
    let mut event = message_event("group", 555, "/describe this");
    event["message"].as_array_mut().unwrap().push(
        json!({"type": "image", "data": {"file": "a.png", "url": "https://img.example/a.png"}}),
    );

    onebot.send_event(event).await;
    let action = onebot.next_action().await;
    onebot.answer(&action, 0, "").await;

    let request = &app.chat_requests()[0];
    let user = request["messages"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(user["content"][1]["type"], "image_url", "{user}");
    assert_eq!(
        user["content"][1]["image_url"]["url"],
        "https://img.example/a.png"
    );
}

#[tokio::test]
async fn proactive_sends_reach_the_platform_with_its_errors_reported() {
    let (app, port) = app_with_onebot().await;
    let (key, _) = app.create_key(&["im"]).await;
    let mut onebot = FakeOneBot::connect(port, Auth::Bearer(TOKEN), "10000")
        .await
        .unwrap();
    let send = |text: &'static str| {
        let app = &app;
        let key = key.clone();
        async move {
            app.post_json(
                "/api/v1/im/message",
                Some(&key),
                json!({"umo": "qq:GroupMessage:555", "message": text}),
            )
            .await
        }
    };

    let (delivered, action) = tokio::join!(send("scheduled notice"), async {
        let action = onebot.next_action().await;
        onebot.answer(&action, 0, "").await;
        action
    });
    let (refused, _) = tokio::join!(send("again"), async {
        let action = onebot.next_action().await;
        onebot
            .answer(&action, 1200, "bot is not in this group")
            .await;
    });

    assert_eq!(delivered.1["status"], "ok", "{}", delivered.1);
    assert_eq!(action["action"], "send_group_msg");
    assert_eq!(action["params"]["group_id"], 555);
    assert_eq!(action_text(&action), "scheduled notice");
    assert_eq!(refused.1["status"], "error");
    let message = refused.1["message"].as_str().unwrap();
    assert!(message.contains("bot is not in this group"), "{message}");
}

#[tokio::test]
async fn bot_status_reports_running_bots_and_refused_connections() {
    let (app, port) = app_with_onebot().await;
    let (key, _) = app.create_key(&["im"]).await;

    let refused = FakeOneBot::connect(port, Auth::Bearer("wrong"), "10000").await;
    let (status, body) = app.get("/api/v1/im/bots/status", Some(&key)).await;

    assert!(refused.is_err());
    assert_eq!(status, 200);
    let bots = body["data"]["bots"].as_array().unwrap();
    assert_eq!(bots[0]["id"], "webchat");
    let qq = bots.iter().find(|bot| bot["id"] == "qq").unwrap();
    assert_eq!(qq["type"], "aiocqhttp");
    assert_eq!(qq["running"], true);
    let error = qq["last_error"].as_str().unwrap_or_default();
    assert!(error.contains("access token"), "{body}");
    let (_, bots) = app.get("/api/v1/im/bots", Some(&key)).await;
    assert_eq!(bots["data"]["bot_ids"], json!(["qq"]));
}

#[tokio::test]
async fn a_platform_that_is_not_configured_is_not_running() {
    let (app, _port) = app_with_onebot().await;
    let (key, _) = app.create_key(&["im"]).await;

    let (_, body) = app
        .post_json(
            "/api/v1/im/message",
            Some(&key),
            json!({"umo": "telegram:GroupMessage:1", "message": "x"}),
        )
        .await;

    assert_eq!(
        body["message"],
        "Bot not found or not running for platform: telegram"
    );
}

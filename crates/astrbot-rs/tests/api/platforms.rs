//! Chat platforms end to end: a fake OneBot v11 implementation (what NapCat
//! or Lagrange are) connects to the server's reverse WebSocket, and its
//! group and private messages get LLM answers back; proactive sends through
//! `/api/v1/im/message` reach it; `/api/v1/im/bots/status` reports it.

// The same fake the platforms crate tests its adapter with.
#[path = "../../../astrbot-platforms/tests/platforms/fake_onebot.rs"]
#[allow(dead_code)]
mod fake_onebot;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
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

/// A message event with a message id of its own, as from a real OneBot
/// implementation (one delivered twice is answered once).
fn message_event(kind: &str, target: i64, text: &str) -> Value {
    static NEXT_MESSAGE_ID: std::sync::atomic::AtomicI64 = std::sync::atomic::AtomicI64::new(77);
    let message_id = NEXT_MESSAGE_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut event = json!({
        "time": 1700000000, "self_id": 10000, "post_type": "message",
        "message_type": kind, "sub_type": "normal", "message_id": message_id,
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
async fn a_pushed_attachment_goes_to_qq_as_its_bytes_and_odd_ids_are_refused() {
    let (app, port) = app_with_onebot().await;
    let (key, _) = app.create_key(&["im", "file"]).await;
    let mut onebot = FakeOneBot::connect(port, Auth::Bearer(TOKEN), "10000")
        .await
        .unwrap();
    let png = b"\x89PNG\r\n\x1a\nnot much of a picture".to_vec();
    let uploaded = app
        .upload(&key, "chart.png", "image/png", png.clone())
        .await;
    let attachment_id = uploaded["data"]["attachment_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let push = |umo: &'static str| {
        let body = json!({"umo": umo, "message": [
            {"type": "plain", "text": "today's chart"},
            {"type": "image", "attachment_id": attachment_id},
        ]});
        let (app, key) = (&app, &key);
        async move { app.post_json("/api/v1/im/message", Some(key), body).await.1 }
    };

    let (delivered, action) = tokio::join!(push("qq:GroupMessage:555"), async {
        let action = onebot.next_action().await;
        onebot.answer(&action, 0, "").await;
        action
    });
    let not_a_number = push("qq:GroupMessage:abc").await;

    assert_eq!(delivered["status"], "ok", "{delivered}");
    let image = &action["params"]["message"][1];
    assert_eq!(image["type"], "image", "{action}");
    let expected = format!("base64://{}", STANDARD.encode(&png));
    assert_eq!(image["data"]["file"], expected.as_str());
    assert!(!action.to_string().contains("attachments"), "{action}");
    assert_eq!(not_a_number["status"], "error", "{not_a_number}");
    let message = not_a_number["message"].as_str().unwrap();
    assert!(message.contains("not a QQ user or group id"), "{message}");
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

/// Starts a server whose OneBot bot has extra `platform_settings` (and
/// whatever else `edit` changes), and connects the fake to it.
async fn onebot_with(edit: impl FnOnce(&mut Value)) -> (TestApp, FakeOneBot) {
    let port = free_port();
    let app = spawn_app_with(Behaviour::default(), |config| {
        config["platform"] = json!([{
            "id": "qq", "type": "aiocqhttp", "enable": true,
            "ws_reverse_host": "127.0.0.1", "ws_reverse_port": port,
            "ws_reverse_token": TOKEN,
        }]);
        edit(config);
    })
    .await;
    let onebot = FakeOneBot::connect(port, Auth::Bearer(TOKEN), "10000")
        .await
        .unwrap();
    (app, onebot)
}

/// Sends a group message from `user` and returns the bot's answer text.
async fn ask(onebot: &mut FakeOneBot, user: i64, text: &str) -> String {
    let mut event = message_event("group", 555, text);
    event["user_id"] = json!(user);
    onebot.send_event(event).await;
    let action = onebot.next_action().await;
    onebot.answer(&action, 0, "").await;
    action_text(&action)
}

async fn stays_quiet(onebot: &mut FakeOneBot) -> bool {
    tokio::time::timeout(std::time::Duration::from_millis(700), onebot.next_action())
        .await
        .is_err()
}

#[tokio::test]
async fn sid_tells_the_umo_to_use_with_the_api() {
    let (_app, mut onebot) = onebot_with(|_| {}).await;

    let answer = ask(&mut onebot, 4242, "/sid").await;

    assert!(answer.contains("UMO: qq:GroupMessage:555"), "{answer}");
    assert!(answer.contains("Sender ID: 4242"), "{answer}");
}

#[tokio::test]
async fn switching_the_provider_is_for_admins() {
    let (app, mut onebot) = onebot_with(|config| {
        config["admins_id"] = json!(["7"]);
    })
    .await;

    let refused = ask(&mut onebot, 4242, "/provider 1").await;
    let listed = ask(&mut onebot, 4242, "/provider").await;
    let switched = ask(&mut onebot, 7, "/provider fake").await;

    assert!(refused.starts_with("Only admins"), "{refused}");
    assert!(listed.contains("1. fake (current)"), "{listed}");
    assert_eq!(switched, "This chat now uses the provider fake.");
    assert!(
        app.chat_requests().is_empty(),
        "commands never reach the model"
    );
}

#[tokio::test]
async fn new_starts_a_conversation_without_the_old_history() {
    let (app, mut onebot) = onebot_with(|_| {}).await;

    ask(&mut onebot, 4242, "/remember the number 42").await;
    ask(&mut onebot, 4242, "/new").await;
    ask(&mut onebot, 4242, "/what was the number").await;

    let last = app.chat_requests().pop().unwrap().to_string();
    assert!(!last.contains("the number 42"), "{last}");
}

#[tokio::test]
async fn unique_session_gives_each_member_their_own_conversation() {
    let (app, mut onebot) = onebot_with(|config| {
        config["platform_settings"] = json!({"unique_session": true});
    })
    .await;

    ask(&mut onebot, 1, "/my secret is blue").await;
    let answer = ask(&mut onebot, 2, "/what is my secret").await;

    assert_eq!(answer, "Echo: what is my secret");
    let last = app.chat_requests().pop().unwrap().to_string();
    assert!(!last.contains("blue"), "{last}");
}

#[tokio::test]
async fn the_whitelist_keeps_other_chats_out() {
    // QQ ids are numbers, and AstrBot reads `[777]` as the id "777".
    for listed in [json!(["777"]), json!([777])] {
        let (_app, mut onebot) = onebot_with(|config| {
            config["platform_settings"] = json!({"id_whitelist": listed});
        })
        .await;

        onebot
            .send_event(message_event("group", 555, "/hello"))
            .await;
        assert!(stays_quiet(&mut onebot).await, "{listed}");
        onebot
            .send_event(message_event("group", 777, "/hello"))
            .await;
        let action = onebot.next_action().await;
        onebot.answer(&action, 0, "").await;

        assert_eq!(action["params"]["group_id"], 777, "{listed}");
    }
}

#[tokio::test]
async fn a_private_chat_is_let_in_by_its_umo_not_by_a_number() {
    // A group's number may be a user's too: as in AstrBot, a private chat
    // is listed by its whole UMO.
    for (listed, answered) in [
        (json!([4242]), false),
        (json!(["qq:FriendMessage:4242"]), true),
    ] {
        let (_app, mut onebot) = onebot_with(|config| {
            config["platform_settings"] = json!({"id_whitelist": listed});
        })
        .await;

        onebot
            .send_event(message_event("private", 4242, "hello"))
            .await;

        if answered {
            let action = onebot.next_action().await;
            onebot.answer(&action, 0, "").await;
            assert_eq!(action["params"]["user_id"], 4242);
        } else {
            assert!(stays_quiet(&mut onebot).await, "{listed}");
        }
    }
}

#[tokio::test]
async fn a_whitelist_turned_off_lets_every_chat_in() {
    let (_app, mut onebot) = onebot_with(|config| {
        config["platform_settings"] =
            json!({"id_whitelist": ["777"], "enable_id_white_list": false});
    })
    .await;

    onebot
        .send_event(message_event("group", 555, "/hello"))
        .await;
    let action = onebot.next_action().await;
    onebot.answer(&action, 0, "").await;

    assert_eq!(action["params"]["group_id"], 555);
}

#[tokio::test]
async fn the_rate_limit_discards_what_exceeds_it_and_replies_carry_the_prefix() {
    let (_app, mut onebot) = onebot_with(|config| {
        config["platform_settings"] = json!({
            "rate_limit": {"time": 60, "count": 1, "strategy": "discard"},
            "reply_prefix": "[bot] ",
        });
    })
    .await;

    let first = ask(&mut onebot, 4242, "/one").await;
    onebot.send_event(message_event("group", 555, "/two")).await;

    assert_eq!(first, "[bot] Echo: one");
    assert!(stays_quiet(&mut onebot).await);
}

#[tokio::test]
async fn a_reply_to_the_bots_message_wakes_it_as_in_astrbot() {
    let (_app, mut onebot) = onebot_with(|_| {}).await;
    // The bot answers; the fake gives its message the id 777.
    let first = ask(&mut onebot, 4242, "/hello").await;
    let quoting = |id: &str| {
        let mut event = message_event("group", 555, "");
        event["message"] = json!([
            {"type": "reply", "data": {"id": id}},
            {"type": "text", "data": {"text": "why?"}},
        ]);
        event
    };

    onebot.send_event(quoting("12345")).await;
    assert!(
        stays_quiet(&mut onebot).await,
        "a reply to someone else is not"
    );
    onebot.send_event(quoting("777")).await;
    let action = onebot.next_action().await;
    onebot.answer(&action, 0, "").await;

    assert_eq!(first, "Echo: hello");
    assert_eq!(action_text(&action), "Echo: why?");
}

// Two workers, as the server runs: on one thread the tasks of one chat's
// messages happen to run in turn.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_senders_messages_sent_together_are_answered_in_order() {
    let (_app, mut onebot) = onebot_with(|config| {
        config["platform_settings"] =
            json!({"rate_limit": {"time": 1, "count": 2, "strategy": "stall"}});
    })
    .await;

    for number in 0..5 {
        onebot
            .send_event(message_event("private", 4242, &format!("m{number}")))
            .await;
    }
    let mut answers = Vec::new();
    for _ in 0..5 {
        let action = onebot.next_action().await;
        onebot.answer(&action, 0, "").await;
        answers.push(action_text(&action));
    }

    let expected: Vec<String> = (0..5).map(|number| format!("Echo: m{number}")).collect();
    assert_eq!(answers, expected);
}

#[tokio::test]
async fn a_message_delivered_twice_is_answered_once() {
    // NapCat may send an event again after reconnecting.
    let (_app, mut onebot) = onebot_with(|_| {}).await;
    let event = message_event("group", 555, "/hello");

    onebot.send_event(event.clone()).await;
    let action = onebot.next_action().await;
    onebot.answer(&action, 0, "").await;
    onebot.send_event(event).await;

    assert_eq!(action_text(&action), "Echo: hello");
    assert!(stays_quiet(&mut onebot).await);
}

#[tokio::test]
async fn commands_count_against_the_rate_limit_too() {
    let (_app, mut onebot) = onebot_with(|config| {
        config["platform_settings"] =
            json!({"rate_limit": {"time": 60, "count": 1, "strategy": "discard"}});
    })
    .await;

    let first = ask(&mut onebot, 4242, "/sid").await;
    onebot.send_event(message_event("group", 555, "/sid")).await;

    assert!(first.contains("qq:GroupMessage:555"), "{first}");
    assert!(stays_quiet(&mut onebot).await);
}

#[tokio::test]
async fn forward_mode_connects_to_the_onebot_server_with_the_token() {
    use futures::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
    use tokio_tungstenite::tungstenite::Message;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let app = spawn_app_with(Behaviour::default(), |config| {
        config["platform"] = json!([{
            "id": "qq", "type": "aiocqhttp", "enable": true,
            "ws_forward_url": url, "ws_reverse_token": TOKEN,
        }]);
    })
    .await;

    let (stream, _) = tokio::time::timeout(std::time::Duration::from_secs(10), listener.accept())
        .await
        .expect("astrbot-rs connects")
        .unwrap();
    let mut authorization = None;
    // The callback's shape (and its large error type) is tungstenite's.
    #[allow(clippy::result_large_err)]
    let mut socket =
        tokio_tungstenite::accept_hdr_async(stream, |request: &Request, response: Response| {
            authorization = request
                .headers()
                .get("authorization")
                .map(|value| value.to_str().unwrap().to_owned());
            Ok(response)
        })
        .await
        .unwrap();
    socket
        .send(Message::Text(
            message_event("private", 0, "forward hello")
                .to_string()
                .into(),
        ))
        .await
        .unwrap();
    let action: Value = loop {
        let frame = tokio::time::timeout(std::time::Duration::from_secs(10), socket.next())
            .await
            .expect("an action arrives")
            .unwrap()
            .unwrap();
        if let Message::Text(text) = frame {
            break serde_json::from_str(text.as_str()).unwrap();
        }
    };

    assert_eq!(authorization.as_deref(), Some("Bearer onebot-secret"));
    assert_eq!(action["action"], "send_private_msg");
    assert_eq!(action_text(&action), "Echo: forward hello");
    drop(app);
}

#[tokio::test]
async fn in_forward_mode_a_connection_closed_for_a_bad_token_shows_in_the_bot_status() {
    use futures::StreamExt;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    use tokio_tungstenite::tungstenite::protocol::CloseFrame;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    // Accepts the WebSocket, then closes it at once, as on a wrong token.
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                continue;
            };
            let close = CloseFrame {
                code: CloseCode::Policy,
                reason: "bad token".into(),
            };
            let _ = socket.close(Some(close)).await;
            while let Some(Ok(_)) = socket.next().await {}
        }
    });
    let app = spawn_app_with(Behaviour::default(), |config| {
        config["platform"] = json!([{
            "id": "qq", "type": "aiocqhttp", "enable": true,
            "ws_forward_url": url, "ws_reverse_token": TOKEN,
        }]);
    })
    .await;
    let (key, _) = app.create_key(&["im"]).await;

    let status = app.wait_bot_error(&key, "qq").await;

    assert_eq!(status["running"], true, "it keeps trying: {status}");
    let error = status["last_error"].as_str().unwrap();
    assert!(
        error.contains("close code 1008") && error.contains("bad token"),
        "{error}"
    );
    assert!(!error.contains(TOKEN), "{error}");
}

#[tokio::test]
async fn with_streaming_on_a_platform_without_edits_gets_the_whole_answer_once() {
    let (_app, mut onebot) = onebot_with(|config| {
        config["provider_settings"]["streaming_response"] = json!(true);
        config["platform_settings"] = json!({"reply_prefix": "> "});
    })
    .await;

    let answer = ask(&mut onebot, 4242, "/stream this answer please").await;

    assert_eq!(answer, "> Echo: stream this answer please");
    assert!(
        stays_quiet(&mut onebot).await,
        "one message, not one per delta"
    );
}

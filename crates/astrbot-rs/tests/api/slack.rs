//! Slack end to end: the server's Slack bot (Socket Mode) checks its token
//! with a fake Web API, opens the fake's Socket Mode WebSocket and acks its
//! envelopes; channel messages with the wake prefix or a mention, DMs and
//! image files get LLM answers through `chat.postMessage`; proactive sends
//! through `/api/v1/im/message` reach it; a rejected token shows in the
//! status.

// The same fake the platforms crate tests its adapter with.
#[path = "../../../astrbot-platforms/tests/platforms/slack/fake.rs"]
#[allow(dead_code)]
mod fake_slack;

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use fake_openai::Behaviour;
use fake_slack::{FakeSlack, SlackSocket};
use serde_json::{json, Value};

use crate::helpers::*;

const BOT_TOKEN: &str = "xoxb-server-token";
const APP_TOKEN: &str = "xapp-server-token";

async fn app_with_slack(fake: &FakeSlack) -> TestApp {
    spawn_app_with(Behaviour::default(), |config| {
        config["platform"] = json!([{
            "id": "slack", "type": "slack", "enable": true,
            "bot_token": BOT_TOKEN, "app_token": APP_TOKEN, "signing_secret": "",
            "slack_connection_mode": "socket", "slack_api_base": fake.api_base(),
        }]);
    })
    .await
}

/// A server whose Slack bot holds a Socket Mode connection to the fake.
struct Connected {
    app: TestApp,
    fake: FakeSlack,
    socket: SlackSocket,
    envelopes: usize,
}

async fn connected() -> Connected {
    let mut fake = FakeSlack::start().await;
    let app = app_with_slack(&fake).await;
    let mut socket = fake.next_socket().await;
    socket
        .send(json!({"type": "hello", "num_connections": 1}))
        .await;
    Connected {
        app,
        fake,
        socket,
        envelopes: 0,
    }
}

impl Connected {
    /// Pushes one Events API envelope and checks the bot acks it.
    async fn push(&mut self, event: Value) {
        self.envelopes += 1;
        let envelope_id = format!("env-{}", self.envelopes);
        self.socket
            .send(json!({
                "envelope_id": envelope_id, "type": "events_api",
                "accepts_response_payload": false,
                "payload": {
                    "token": "legacy", "team_id": "T1", "api_app_id": "A1",
                    "type": "event_callback", "event_id": format!("Ev{}", self.envelopes),
                    "event_time": 1700000000, "event": event,
                },
            }))
            .await;
        assert_eq!(
            self.socket.next_json().await,
            json!({"envelope_id": envelope_id})
        );
    }
}

fn channel_message(ts: &str, text: &str) -> Value {
    json!({
        "type": "message", "channel": "C1", "channel_type": "channel", "user": "U7",
        "text": text, "ts": ts,
    })
}

#[tokio::test]
async fn a_channel_message_with_the_wake_prefix_is_answered_in_that_channel() {
    let mut bot = connected().await;

    bot.push(channel_message("1700000001.000100", "/what is up"))
        .await;
    let post = bot.fake.next_call("chat.postMessage").await;

    assert_eq!(
        post.authorization.as_deref(),
        Some("Bearer xoxb-server-token")
    );
    assert_eq!(post.body["channel"], "C1", "{:?}", post.body);
    assert_eq!(post.body["text"], "Echo: what is up");
}

#[tokio::test]
async fn a_mention_of_the_bot_wakes_it_in_a_channel() {
    let mut bot = connected().await;

    bot.push(channel_message("1700000001.000100", "<@UBOT> how are you"))
        .await;
    let post = bot.fake.next_call("chat.postMessage").await;

    assert_eq!(post.body["channel"], "C1");
    assert_eq!(post.body["text"], "Echo: how are you");
}

#[tokio::test]
async fn channel_chatter_without_a_wake_is_ignored_but_dms_are_answered() {
    let mut bot = connected().await;

    bot.push(channel_message("1700000001.000100", "just chatting"))
        .await;
    let quiet = tokio::time::timeout(
        Duration::from_millis(700),
        bot.fake.next_call("chat.postMessage"),
    )
    .await;
    assert!(quiet.is_err(), "answered: {quiet:?}");
    assert!(bot.app.chat_requests().is_empty());

    bot.push(json!({
        "type": "message", "channel": "D5", "channel_type": "im", "user": "U7",
        "text": "hi bot", "ts": "1700000002.000100",
    }))
    .await;
    let post = bot.fake.next_call("chat.postMessage").await;

    assert_eq!(post.body["channel"], "D5");
    assert_eq!(post.body["text"], "Echo: hi bot");
    let asked = bot.app.chat_requests();
    assert_eq!(asked.len(), 1);
    assert!(!asked[0].to_string().contains("just chatting"), "{asked:?}");
}

#[tokio::test]
async fn an_image_file_reaches_the_model() {
    let mut bot = connected().await;
    let url = bot.fake.private_url("cat.png");
    let mut message = channel_message("1700000001.000100", "/describe this");
    message["files"] = json!([{"name": "cat.png", "mimetype": "image/png", "url_private": url}]);

    bot.push(message).await;
    let post = bot.fake.next_call("chat.postMessage").await;

    assert_eq!(post.body["text"], "Echo: describe this");
    let request = &bot.app.chat_requests()[0];
    let user = request["messages"].as_array().unwrap().last().unwrap();
    let image = user["content"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|part| part["type"] == "image_url")
        .unwrap_or_else(|| panic!("no image part in {user}"));
    // The image's bytes: its Slack URL opens only with the bot token.
    let bytes = fake_slack::private_file_bytes("T1-F1/cat.png");
    assert_eq!(
        image["image_url"]["url"],
        format!("data:image/png;base64,{}", STANDARD.encode(bytes))
    );
    assert!(!request.to_string().contains(BOT_TOKEN), "{request}");
}

#[tokio::test]
async fn proactive_sends_reach_the_channel() {
    let mut bot = connected().await;
    let (key, _) = bot.app.create_key(&["im"]).await;
    bot.app.wait_bot_running(&key, "slack").await;

    let (_, body) = bot
        .app
        .post_json(
            "/api/v1/im/message",
            Some(&key),
            json!({"umo": "slack:GroupMessage:C1", "message": "scheduled notice"}),
        )
        .await;

    assert_eq!(body["status"], "ok", "{body}");
    let post = bot.fake.next_call("chat.postMessage").await;
    assert_eq!(post.body["channel"], "C1");
    assert_eq!(post.body["text"], "scheduled notice");
}

#[tokio::test]
async fn a_rejected_token_shows_in_the_bot_status() {
    let fake = FakeSlack::start().await;
    fake.answer("auth.test", json!({"ok": false, "error": "invalid_auth"}));
    let app = app_with_slack(&fake).await;
    let (key, _) = app.create_key(&["im"]).await;

    let bot = app.wait_bot_error(&key, "slack").await;

    assert_eq!(bot["type"], "slack");
    assert_eq!(bot["running"], false, "{bot}");
    let error = bot["last_error"].as_str().unwrap();
    assert!(error.contains("Slack rejected the bot token"), "{error}");
    assert!(!error.contains(BOT_TOKEN), "{error}");
}

#[tokio::test]
async fn with_streaming_the_answer_grows_in_one_message() {
    let mut fake = FakeSlack::start().await;
    let behaviour = Behaviour {
        token_delay: Duration::from_millis(250),
        ..Behaviour::default()
    };
    let app = spawn_app_with(behaviour, |config| {
        config["provider_settings"]["streaming_response"] = json!(true);
        config["platform_settings"] = json!({"reply_prefix": "> "});
        config["platform"] = json!([{
            "id": "slack", "type": "slack", "enable": true,
            "bot_token": BOT_TOKEN, "app_token": APP_TOKEN,
            "slack_connection_mode": "socket", "slack_api_base": fake.api_base(),
        }]);
    })
    .await;
    let socket = fake.next_socket().await;
    let mut bot = Connected {
        app,
        fake,
        socket,
        envelopes: 0,
    };
    bot.socket.send(json!({"type": "hello"})).await;
    // Slack shows `>` escaped, in the first post and in every update.
    let whole = "&gt; Echo: stream this answer please";

    bot.push(channel_message(
        "1700000001.000100",
        "/stream this answer please",
    ))
    .await;
    let post = bot.fake.next_call("chat.postMessage").await;
    let first = post.body["text"].as_str().unwrap().to_owned();
    let mut shown = first.clone();
    while shown != whole {
        let update = bot.fake.next_call("chat.update").await;
        assert_eq!(update.body["channel"], "C1");
        assert_eq!(update.body["ts"], "1700000099.000100", "{:?}", update.body);
        shown = update.body["text"].as_str().unwrap().to_owned();
    }

    assert_eq!(post.body["channel"], "C1");
    assert!(
        first.starts_with("&gt; Echo:") && first.len() < whole.len(),
        "the first text is posted before the answer is complete: {first}"
    );
    let second_post = tokio::time::timeout(
        Duration::from_millis(700),
        bot.fake.next_call("chat.postMessage"),
    )
    .await;
    assert!(
        second_post.is_err(),
        "one message, updated: {second_post:?}"
    );
}

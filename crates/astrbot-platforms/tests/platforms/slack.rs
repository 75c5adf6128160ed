//! The slack adapter end to end against a fake Slack on 127.0.0.1:
//! signed Events API webhooks, Socket Mode (acks, disconnect, drops) and
//! Web API sends.

mod fake;

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use astrbot_core::MessageType;
use astrbot_platforms::slack::{SlackAdapter, SlackConfig};
use astrbot_platforms::{
    Media, MessagePart, OutboundChain, OutboundPart, PlatformAdapter, PlatformConfig,
    PlatformError, PlatformRegistry, SessionTarget,
};
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::{mpsc, watch};

use crate::fake_onebot::free_port;
use crate::running::{run, Running};
use fake::{FakeSlack, WAIT};

const BOT_TOKEN: &str = "xoxb-test-token";
const APP_TOKEN: &str = "xapp-test-token";
const SECRET: &str = "signing-secret";

fn start(config: SlackConfig) -> Running<SlackAdapter> {
    run(SlackAdapter::new("slack", config).unwrap())
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// Computed here independently of the adapter's own code.
fn signature(secret: &str, timestamp: &str, body: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("v0:{timestamp}:{body}").as_bytes());
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect();
    format!("v0={hex}")
}

async fn post_signed(url: &str, body: &Value, timestamp: i64, secret: &str) -> reqwest::Response {
    let body = body.to_string();
    let timestamp = timestamp.to_string();
    reqwest::Client::new()
        .post(url)
        .header("content-type", "application/json")
        .header("x-slack-request-timestamp", &timestamp)
        .header("x-slack-signature", signature(secret, &timestamp, &body))
        .body(body)
        .send()
        .await
        .unwrap()
}

fn event_callback(event: Value) -> Value {
    json!({
        "token": "legacy", "team_id": "T1", "api_app_id": "A1", "type": "event_callback",
        "event_id": "Ev1", "event_time": 1700000000, "event": event,
    })
}

#[tokio::test]
async fn webhook_signed_events_arrive_and_bad_requests_get_401() {
    let mut fake = FakeSlack::start().await;
    let port = free_port();
    let mut config = SlackConfig::webhook(BOT_TOKEN, SECRET, "127.0.0.1", port);
    config.api_base = fake.api_base();
    let mut bot = start(config);
    let auth = fake.next_call("auth.test").await;
    assert_eq!(
        auth.authorization.as_deref(),
        Some("Bearer xoxb-test-token")
    );
    crate::eventually(|| bot.adapter.status().running).await;
    assert_eq!(bot.adapter.self_user_id(), "UBOT");
    let url = format!("http://127.0.0.1:{port}/slack/events");

    let challenge = json!({"token": "t", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"});
    let answer = post_signed(&url, &challenge, now(), SECRET).await;
    assert_eq!(answer.status(), 200);
    assert_eq!(
        answer.text().await.unwrap(),
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );

    let in_channel = event_callback(json!({
        "type": "message", "channel": "C1", "channel_type": "channel", "user": "U7",
        "text": "<@UBOT> hello &amp; welcome", "ts": "1700000001.000200",
        "thread_ts": "1700000000.000100",
    }));
    let answer = post_signed(&url, &in_channel, now(), SECRET).await;
    assert_eq!(answer.status(), 200);
    let message = bot.next_inbound().await;
    assert_eq!(message.umo().to_string(), "slack:GroupMessage:C1");
    assert_eq!(
        (message.sender.id.as_str(), message.sender.name.as_str()),
        ("U7", "Alice")
    );
    assert_eq!(
        (message.self_id.as_str(), message.message_id.as_str()),
        ("UBOT", "1700000001.000200")
    );
    assert!(message.mentions_bot());
    assert_eq!(message.plain_text(), " hello & welcome");
    assert_eq!(
        message.chain[0],
        MessagePart::Reply {
            message_id: "1700000000.000100".into(),
            quoted_text: None,
            to_bot: false,
        }
    );

    // Wrong secret, stale and future timestamps, missing headers: 401.
    let dm = event_callback(json!({
        "type": "message", "channel": "D5", "channel_type": "im", "user": "U7",
        "text": "sneaky", "ts": "1700000002.000300",
    }));
    for (timestamp, secret) in [
        (now(), "wrong-secret"),
        (now() - 301, SECRET),
        (now() + 400, SECRET),
    ] {
        let answer = post_signed(&url, &dm, timestamp, secret).await;
        assert_eq!(answer.status(), 401, "{timestamp} {secret}");
    }
    let unsigned = reqwest::Client::new()
        .post(&url)
        .body(dm.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(unsigned.status(), 401);
    // A signature over a different body does not carry over.
    let timestamp = now().to_string();
    let tampered = reqwest::Client::new()
        .post(&url)
        .header("x-slack-request-timestamp", &timestamp)
        .header(
            "x-slack-signature",
            signature(SECRET, &timestamp, &in_channel.to_string()),
        )
        .body(dm.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(tampered.status(), 401);

    // Slack retrying the first event is not a second message; bot
    // messages are ignored; the next message through is the real DM.
    assert_eq!(
        post_signed(&url, &in_channel, now(), SECRET).await.status(),
        200
    );
    let from_bot = event_callback(json!({
        "type": "message", "subtype": "bot_message", "bot_id": "B9", "channel": "C1",
        "text": "beep", "ts": "1700000003.000400",
    }));
    assert_eq!(
        post_signed(&url, &from_bot, now(), SECRET).await.status(),
        200
    );
    let real_dm = event_callback(json!({
        "type": "message", "channel": "D5", "channel_type": "im", "user": "U7",
        "text": "private hi", "ts": "1700000004.000500",
    }));
    assert_eq!(
        post_signed(&url, &real_dm, now(), SECRET).await.status(),
        200
    );
    let message = bot.next_inbound().await;
    assert_eq!(message.umo().to_string(), "slack:FriendMessage:D5");
    assert_eq!(message.plain_text(), "private hi");
    assert!(bot.inbound.try_recv().is_err());
    bot.stop().await;
}

#[tokio::test]
async fn socket_mode_acks_delivers_and_reconnects() {
    let mut fake = FakeSlack::start().await;
    let mut config = SlackConfig::socket(BOT_TOKEN, APP_TOKEN);
    config.api_base = fake.api_base();
    let mut bot = start(config);
    fake.next_call("auth.test").await;
    let open = fake.next_call("apps.connections.open").await;
    assert_eq!(
        open.authorization.as_deref(),
        Some("Bearer xapp-test-token")
    );

    let mut socket = fake.next_socket().await;
    socket
        .send(json!({"type": "hello", "num_connections": 1, "debug_info": {"host": "fake"}}))
        .await;
    socket
        .send(json!({
            "envelope_id": "env-1", "type": "events_api", "accepts_response_payload": false,
            "payload": event_callback(json!({
                "type": "app_mention", "channel": "C1", "user": "U7",
                "text": "<@UBOT> what's up", "ts": "1700000010.000100",
                "files": [{"name": "cat.png", "mimetype": "image/png",
                           "url_private": fake.private_url("cat.png")}],
            })),
        }))
        .await;
    assert_eq!(socket.next_json().await, json!({"envelope_id": "env-1"}));
    let message = bot.next_inbound().await;
    assert_eq!(message.umo().to_string(), "slack:GroupMessage:C1");
    assert!(message.mentions_bot());
    assert_eq!(message.plain_text(), " what's up");
    // The image's bytes, fetched with the bot token: its URL is private.
    assert_eq!(
        message.chain.last(),
        Some(&MessagePart::Image(Media::Bytes {
            data: fake::private_file_bytes("T1-F1/cat.png"),
            mime: "image/png".into(),
        }))
    );
    let fetched = fake.next_call("files-pri").await;
    assert!(fetched
        .authorization
        .is_some_and(|auth| auth.starts_with("Bearer xoxb-")));
    assert!(bot.adapter.status().running);

    // Slack's `disconnect`: a fresh URL and a new connection.
    socket
        .send(json!({"type": "disconnect", "reason": "refresh_requested"}))
        .await;
    fake.next_call("apps.connections.open").await;
    let mut second = fake.next_socket().await;
    second.send(json!({"type": "hello"})).await;
    second
        .send(json!({
            "envelope_id": "env-2", "type": "events_api",
            "payload": event_callback(json!({
                "type": "message", "channel": "D5", "channel_type": "im", "user": "U7",
                "text": "after refresh", "ts": "1700000011.000100",
            })),
        }))
        .await;
    assert_eq!(second.next_json().await, json!({"envelope_id": "env-2"}));
    let message = bot.next_inbound().await;
    assert_eq!(message.umo().to_string(), "slack:FriendMessage:D5");
    assert_eq!(message.plain_text(), "after refresh");

    // A dropped socket is reconnected too.
    drop(second);
    fake.next_call("apps.connections.open").await;
    let mut third = fake.next_socket().await;
    third.send(json!({"type": "hello"})).await;
    third
        .send(json!({"envelope_id": "env-3", "type": "slash_commands", "payload": {}}))
        .await;
    assert_eq!(third.next_json().await, json!({"envelope_id": "env-3"}));
    crate::eventually(|| bot.adapter.status().running).await;

    // Shutdown closes the connection.
    let closing = tokio::spawn(third.drain());
    bot.stop().await;
    closing.await.unwrap();
}

#[tokio::test]
async fn send_posts_text_threads_and_uploads_files() {
    let mut fake = FakeSlack::start().await;
    let mut config = SlackConfig::socket(BOT_TOKEN, APP_TOKEN);
    config.api_base = fake.api_base();
    let adapter = SlackAdapter::new("slack", config).unwrap();
    let chain = OutboundChain::new()
        .with(OutboundPart::Reply {
            message_id: "1700000001.000200".into(),
        })
        .with(OutboundPart::At {
            target_id: "U7".into(),
        })
        .with(OutboundPart::Text(" 1 < 2 & 3 > 2".into()))
        .with(OutboundPart::Image(Media::Url(
            "https://x.test/a.png".into(),
        )))
        .with(OutboundPart::Image(Media::Bytes {
            data: b"\x89PNG".to_vec(),
            mime: "image/png".into(),
        }));
    adapter
        .send(&SessionTarget::new(MessageType::Group, "C1"), chain)
        .await
        .unwrap();
    let post = fake.next_call("chat.postMessage").await;
    assert_eq!(
        post.authorization.as_deref(),
        Some("Bearer xoxb-test-token")
    );
    assert_eq!(
        post.body,
        json!({
            "channel": "C1",
            "text": "<@U7> 1 &lt; 2 &amp; 3 &gt; 2\n<https://x.test/a.png>",
            "thread_ts": "1700000001.000200",
        })
    );
    let ticket = fake.next_call("files.getUploadURLExternal").await;
    assert_eq!(
        ticket.authorization.as_deref(),
        Some("Bearer xoxb-test-token")
    );
    assert_eq!(ticket.body, json!({"filename": "image.png", "length": "4"}));
    let upload = fake.next_call("upload").await;
    assert_eq!(
        upload.authorization, None,
        "the token must not go to the upload URL"
    );
    assert_eq!(
        upload.body,
        json!({"file": "F1", "bytes": [0x89, b'P', b'N', b'G']})
    );
    let complete = fake.next_call("files.completeUploadExternal").await;
    assert_eq!(complete.body["channel_id"], "C1");
    assert_eq!(complete.body["thread_ts"], "1700000001.000200");
    let files: Value = serde_json::from_str(complete.body["files"].as_str().unwrap()).unwrap();
    assert_eq!(files, json!([{"id": "F1", "title": "image.png"}]));

    // A plain DM reply has no thread; empty chains send nothing.
    adapter
        .send(
            &SessionTarget::new(MessageType::Friend, "D5"),
            OutboundChain::text("pong"),
        )
        .await
        .unwrap();
    let post = fake.next_call("chat.postMessage").await;
    assert_eq!(post.body, json!({"channel": "D5", "text": "pong"}));
    adapter
        .send(
            &SessionTarget::new(MessageType::Friend, "D5"),
            OutboundChain::new(),
        )
        .await
        .unwrap();

    // Posting returns the ts that chat.update edits later.
    let ts = adapter.post_message("C1", "draft", None).await.unwrap();
    assert_eq!(ts, "1700000099.000100");
    adapter.update_text("C1", &ts, "final <b>").await.unwrap();
    let update = fake.next_call("chat.update").await;
    assert_eq!(
        update.body,
        json!({"channel": "C1", "ts": "1700000099.000100", "text": "final &lt;b&gt;"})
    );
}

#[tokio::test]
async fn slack_errors_are_clear_and_leak_no_token() {
    let fake = FakeSlack::start().await;
    let mut config = SlackConfig::socket(BOT_TOKEN, APP_TOKEN);
    config.api_base = fake.api_base();
    let adapter = SlackAdapter::new("slack", config).unwrap();
    fake.answer(
        "chat.postMessage",
        json!({"ok": false, "error": "channel_not_found"}),
    );
    let error = adapter
        .send(
            &SessionTarget::new(MessageType::Group, "C404"),
            OutboundChain::text("x"),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, PlatformError::Action { .. }), "{error}");
    assert_eq!(
        error.to_string(),
        "chat.postMessage failed: retcode 200: channel_not_found: no such channel, or the bot cannot see it"
    );
    fake.answer(
        "chat.update",
        json!({"ok": false, "error": "missing_scope", "needed": "chat:write"}),
    );
    let error = adapter.update_text("C1", "1.2", "x").await.unwrap_err();
    assert!(
        error.to_string().contains("missing_scope") && error.to_string().contains("chat:write"),
        "{error}"
    );
    assert!(!error.to_string().contains("xoxb"));

    // Nothing listening: a clear "cannot reach" error.
    let mut config = SlackConfig::socket(BOT_TOKEN, APP_TOKEN);
    config.api_base = format!("http://127.0.0.1:{}/api", free_port());
    let offline = SlackAdapter::new("slack", config).unwrap();
    let error = offline
        .send(
            &SessionTarget::new(MessageType::Group, "C1"),
            OutboundChain::text("x"),
        )
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("chat.postMessage: cannot reach Slack"),
        "{error}"
    );
}

#[tokio::test]
async fn a_short_rate_limit_is_sat_out_once_and_a_long_one_fails_at_once() {
    let mut fake = FakeSlack::start().await;
    let mut config = SlackConfig::socket(BOT_TOKEN, APP_TOKEN);
    config.api_base = fake.api_base();
    let adapter = SlackAdapter::new("slack", config).unwrap();
    let channel = SessionTarget::new(MessageType::Group, "C1");

    fake.rate_limit_once("chat.postMessage", 1);
    let started = std::time::Instant::now();
    adapter
        .send(&channel, OutboundChain::text("after the wait"))
        .await
        .unwrap();
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
    let refused = fake.next_call("chat.postMessage").await;
    let sent = fake.next_call("chat.postMessage").await;
    assert_eq!(refused.body, sent.body, "the same message, sent again");
    assert_eq!(sent.body["text"], "after the wait");
    let third = tokio::time::timeout(
        std::time::Duration::from_millis(300),
        fake.next_call("chat.postMessage"),
    )
    .await;
    assert!(third.is_err(), "sent once more, not twice");

    fake.rate_limit_once("chat.postMessage", 600);
    let started = std::time::Instant::now();
    let error = adapter
        .send(&channel, OutboundChain::text("too soon"))
        .await
        .unwrap_err();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert!(error.to_string().contains("(retry after 600s)"), "{error}");
}

#[tokio::test]
async fn rejected_tokens_fail_run_clearly() {
    let fake = FakeSlack::start().await;
    fake.answer("auth.test", json!({"ok": false, "error": "invalid_auth"}));
    let mut config = SlackConfig::socket(BOT_TOKEN, APP_TOKEN);
    config.api_base = fake.api_base();
    let adapter = Arc::new(SlackAdapter::new("slack", config.clone()).unwrap());
    let (sender, _inbound) = mpsc::channel(1);
    let (_stop, shutdown) = watch::channel(false);
    let error = tokio::time::timeout(WAIT, adapter.clone().run(sender.clone(), shutdown.clone()))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(error, PlatformError::Config(_)), "{error}");
    assert!(
        error.to_string().contains("Slack rejected the bot token"),
        "{error}"
    );
    assert!(!error.to_string().contains(BOT_TOKEN));
    let status = adapter.status();
    assert!(!status.running);
    assert_eq!(status.last_error, Some(error.to_string()));

    // A bot token where the app token belongs.
    fake.answer("auth.test", json!({"ok": true, "user_id": "UBOT"}));
    fake.answer(
        "apps.connections.open",
        json!({"ok": false, "error": "not_allowed_token_type"}),
    );
    let adapter = Arc::new(SlackAdapter::new("slack", config).unwrap());
    let error = tokio::time::timeout(WAIT, adapter.run(sender, shutdown))
        .await
        .unwrap()
        .unwrap_err();
    assert!(
        error.to_string().contains("Slack rejected the app token"),
        "{error}"
    );
}

#[test]
fn builtin_registry_builds_slack_from_astrbot_config() {
    let entry = json!({
        "id": "slack", "type": "slack", "enable": true, "bot_token": BOT_TOKEN,
        "app_token": APP_TOKEN, "signing_secret": "", "slack_connection_mode": "socket",
        "slack_webhook_host": "0.0.0.0", "slack_webhook_port": 6197,
        "slack_webhook_path": "/slack/events",
    });
    let config = PlatformConfig::from_json(&entry).unwrap();
    let adapter = PlatformRegistry::builtin().build(&config).unwrap();
    assert_eq!((adapter.id(), adapter.kind()), ("slack", "slack"));
    let missing = PlatformConfig::from_json(&json!({"id": "s", "type": "slack"})).unwrap();
    let error = PlatformRegistry::builtin().build(&missing).err().unwrap();
    assert!(error.to_string().contains("bot_token"), "{error}");
}

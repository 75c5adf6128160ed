//! The discord adapter end to end against a fake gateway and REST API on
//! 127.0.0.1.

use std::time::{Duration, Instant};

use astrbot_core::MessageType;
use astrbot_platforms::discord::{DiscordAdapter, DiscordConfig};
use astrbot_platforms::{
    Media, MessagePart, OutboundChain, OutboundPart, PlatformAdapter, PlatformConfig,
    PlatformError, PlatformRegistry, SessionTarget,
};
use serde_json::json;

use crate::eventually;
use crate::fake_discord::{guild_message, FakeGateway, FakeRest, BOT_ID, TOKEN};
use crate::running::{run, Running};

fn config(rest: &FakeRest, gateway: Option<&FakeGateway>) -> DiscordConfig {
    let mut config = DiscordConfig::new(TOKEN);
    config.api_base = rest.api_base.clone();
    config.gateway_url = gateway.map(FakeGateway::url);
    config.reconnect_delay = Duration::from_millis(10);
    config
}

fn start(config: DiscordConfig) -> Running<DiscordAdapter> {
    run(DiscordAdapter::new("dc", config).unwrap())
}

#[tokio::test]
async fn identify_message_heartbeat_reconnect_and_resume() {
    let gateway = FakeGateway::bind().await;
    let resume_gateway = FakeGateway::bind().await;
    let rest = FakeRest::start(&gateway.url()).await;
    let mut bot = start(config(&rest, Some(&gateway)));

    let mut conn = gateway.accept().await;
    assert_eq!(conn.uri, "/?v=10&encoding=json");
    conn.hello(100).await;
    let identify = conn.next_non_heartbeat().await.unwrap();
    assert_eq!(identify["op"], 2);
    assert_eq!(identify["d"]["token"], TOKEN);
    assert_eq!(identify["d"]["intents"], 1 | 512 | 4096 | 32768);
    assert_eq!(identify["d"]["properties"]["browser"], "astrbot-rs");

    conn.ready(1, "sess-1", &resume_gateway.url()).await;
    let mentions = json!([{"id": BOT_ID, "username": "astrbot", "bot": true}]);
    conn.dispatch(
        2,
        "MESSAGE_CREATE",
        guild_message("900", "<@42> hello bot", mentions),
    )
    .await;
    // Our own message is not passed on.
    let mut own = guild_message("901", "I am the bot", json!([]));
    own["author"] = json!({"id": BOT_ID, "username": "astrbot", "bot": true});
    conn.dispatch(3, "MESSAGE_CREATE", own).await;

    let message = bot.next_inbound().await;
    assert_eq!(message.umo().to_string(), "dc:GroupMessage:300");
    assert_eq!(
        (message.sender.id.as_str(), message.sender.name.as_str()),
        ("7", "Alice")
    );
    assert_eq!(
        (message.self_id.as_str(), message.message_id.as_str()),
        (BOT_ID, "900")
    );
    assert!(message.mentions_bot());
    assert_eq!(message.plain_text(), "hello bot");
    assert!(bot.adapter.status().running);
    assert_eq!(bot.adapter.user_id().as_deref(), Some(BOT_ID));

    // Heartbeats carry the last sequence number and are acked.
    // (Beats sent before the dispatches were read carry older numbers.)
    let mut current = 0;
    while current < 3 {
        let beat = conn.next().await.unwrap();
        assert_eq!(beat["op"], 1);
        conn.send(json!({"op": 11})).await;
        if beat["d"] == 3 {
            current += 1;
        }
    }

    // Reconnect: the adapter resumes on READY's resume URL.
    conn.send(json!({"op": 7, "d": null})).await;
    let mut resumed = resume_gateway.accept().await;
    assert_eq!(resumed.uri, "/?v=10&encoding=json");
    resumed.hello(60_000).await;
    let resume = resumed.next_non_heartbeat().await.unwrap();
    assert_eq!(
        resume,
        json!({"op": 6, "d": {"token": TOKEN, "session_id": "sess-1", "seq": 3}})
    );
    resumed.dispatch(4, "RESUMED", json!({})).await;
    let dm = json!({
        "id": "950", "type": 0, "channel_id": "555",
        "author": {"id": "8", "username": "bob", "global_name": null},
        "content": "private hi", "mentions": [], "attachments": [
            {"id": "1", "filename": "cat.png", "content_type": "image/png", "url": "http://127.0.0.1/cat.png"}
        ],
    });
    resumed.dispatch(5, "MESSAGE_CREATE", dm).await;
    let message = bot.next_inbound().await;
    assert_eq!(message.umo().to_string(), "dc:FriendMessage:555");
    assert_eq!(message.sender.name, "bob");
    assert_eq!(
        message.chain,
        vec![
            MessagePart::Text("private hi".into()),
            MessagePart::Image(Media::Url("http://127.0.0.1/cat.png".into())),
        ]
    );

    // Shutdown closes the socket cleanly with 1000.
    bot.stop.send_replace(true);
    assert_eq!(resumed.close_code().await, Some(1000));
    let adapter = bot.adapter.clone();
    assert_eq!(bot.result().await, Ok(()));
    assert!(!adapter.status().running);
}

#[tokio::test]
async fn missed_heartbeat_ack_and_dropped_socket_resume() {
    let gateway = FakeGateway::bind().await;
    let rest = FakeRest::start(&gateway.url()).await;
    let bot = start(config(&rest, Some(&gateway)));

    let mut conn = gateway.accept().await;
    conn.hello(30).await;
    assert_eq!(conn.next_non_heartbeat().await.unwrap()["op"], 2);
    // No resume URL in READY: resume on the configured gateway.
    conn.ready(1, "sess-9", "").await;
    // The first beat goes unanswered; at the next one the adapter gives
    // up on this connection (closing with a resumable code) and resumes.
    let beat = conn.next().await.unwrap();
    assert_eq!(beat["op"], 1);
    let started = Instant::now();
    assert_eq!(conn.close_code().await, Some(4000));
    assert!(started.elapsed() < Duration::from_secs(2));

    let mut second = gateway.accept().await;
    second.hello(60_000).await;
    let resume = second.next_non_heartbeat().await.unwrap();
    assert_eq!(resume["op"], 6);
    assert_eq!(resume["d"]["session_id"], "sess-9");
    assert_eq!(resume["d"]["seq"], 1);

    // Invalid Session (not resumable): identify afresh.
    second.send(json!({"op": 9, "d": false})).await;
    let mut third = gateway.accept().await;
    third.hello(60_000).await;
    assert_eq!(third.next_non_heartbeat().await.unwrap()["op"], 2);
    third.ready(1, "sess-10", "").await;

    // A dropped socket (no close code from Discord) resumes the new session.
    drop(third);
    let mut fourth = gateway.accept().await;
    fourth.hello(60_000).await;
    let resume = fourth.next_non_heartbeat().await.unwrap();
    assert_eq!(
        (resume["op"].clone(), resume["d"]["session_id"].clone()),
        (json!(6), json!("sess-10"))
    );

    bot.stop.send_replace(true);
    assert_eq!(fourth.close_code().await, Some(1000));
    assert_eq!(bot.result().await, Ok(()));
}

#[tokio::test]
async fn bad_token_close_4004_fails_run_clearly() {
    let gateway = FakeGateway::bind().await;
    let rest = FakeRest::start(&gateway.url()).await;
    let bot = start(config(&rest, Some(&gateway)));
    let mut conn = gateway.accept().await;
    conn.hello(60_000).await;
    assert_eq!(conn.next_non_heartbeat().await.unwrap()["op"], 2);
    conn.close(4004, "Authentication failed.").await;

    let adapter = bot.adapter.clone();
    let error = bot.result().await.unwrap_err();
    let text = error.to_string();
    assert!(text.starts_with("Discord rejected the bot token"), "{text}");
    assert!(text.contains("4004"), "{text}");
    assert!(!text.contains(TOKEN));
    let status = adapter.status();
    assert!(!status.running);
    assert_eq!(status.last_error.as_deref(), Some(text.as_str()));
}

#[tokio::test]
async fn gateway_url_comes_from_rest_and_bad_token_there_is_fatal() {
    let gateway = FakeGateway::bind().await;
    let rest = FakeRest::start(&gateway.url()).await;
    let bot = start(config(&rest, None));
    let mut conn = gateway.accept().await;
    assert_eq!(conn.uri, "/?v=10&encoding=json");
    conn.hello(60_000).await;
    assert_eq!(conn.next_non_heartbeat().await.unwrap()["op"], 2);
    let asked = rest.requests();
    assert_eq!(asked[0].path, "/gateway/bot");
    assert_eq!(asked[0].authorization, format!("Bot {TOKEN}"));
    bot.stop.send_replace(true);
    assert_eq!(conn.close_code().await, Some(1000));
    assert_eq!(bot.result().await, Ok(()));

    let mut wrong = config(&rest, None);
    wrong.token = "wrong".into();
    let error = start(wrong).result().await.unwrap_err().to_string();
    assert!(
        error.starts_with("Discord rejected the bot token"),
        "{error}"
    );
    assert!(!error.contains("wrong"), "{error}");
}

fn adapter(rest: &FakeRest) -> DiscordAdapter {
    DiscordAdapter::new("dc", config(rest, None)).unwrap()
}

#[tokio::test]
async fn send_posts_text_reply_and_long_text_with_the_bot_token() {
    let rest = FakeRest::start("ws://127.0.0.1:9").await;
    let adapter = adapter(&rest);
    let chain = OutboundChain::new()
        .with(OutboundPart::Reply {
            message_id: "900".into(),
        })
        .with(OutboundPart::Text("hi Alice".into()));
    adapter
        .send(&SessionTarget::new(MessageType::Group, "300"), chain)
        .await
        .unwrap();
    let long = format!("{}\n{}", "a".repeat(1500), "b".repeat(1500));
    adapter
        .send(
            &SessionTarget::new(MessageType::Friend, "555"),
            OutboundChain::text(long),
        )
        .await
        .unwrap();
    // Nothing to send: no request.
    adapter
        .send(
            &SessionTarget::new(MessageType::Group, "300"),
            OutboundChain::new(),
        )
        .await
        .unwrap();

    let requests = rest.requests();
    assert_eq!(requests.len(), 3);
    let first = &requests[0];
    assert_eq!(first.path, "/channels/300/messages");
    assert_eq!(first.authorization, format!("Bot {TOKEN}"));
    assert!(first.content_type.starts_with("application/json"));
    let body = first.json();
    assert_eq!(body["content"], "hi Alice");
    assert_eq!(body["message_reference"]["message_id"], "900");
    assert_eq!(requests[1].path, "/channels/555/messages");
    assert_eq!(requests[1].json()["content"], "a".repeat(1500));
    assert_eq!(requests[2].json()["content"], "b".repeat(1500));
    assert!(requests[2].json().get("message_reference").is_none());
}

#[tokio::test]
async fn send_uploads_files_as_multipart_and_links_urls() {
    let rest = FakeRest::start("ws://127.0.0.1:9").await;
    let adapter = adapter(&rest);
    let chain = OutboundChain::new()
        .with(OutboundPart::Text("here".into()))
        .with(OutboundPart::Image(Media::Url(
            "https://example.invalid/a.png".into(),
        )))
        .with(OutboundPart::File {
            name: "report.txt".into(),
            source: Media::Bytes {
                data: b"report body".to_vec(),
                mime: "text/plain".into(),
            },
        });
    adapter
        .send(&SessionTarget::new(MessageType::Group, "300"), chain)
        .await
        .unwrap();
    let request = &rest.requests()[0];
    assert!(request
        .content_type
        .starts_with("multipart/form-data; boundary="));
    let body = String::from_utf8_lossy(&request.body);
    assert!(body.contains("name=\"payload_json\""));
    assert!(body.contains("\"content\":\"here\\nhttps://example.invalid/a.png\""));
    assert!(body.contains("name=\"files[0]\"; filename=\"report.txt\""));
    assert!(body.contains("report body"));
}

#[tokio::test]
async fn send_waits_out_one_429_and_reports_403_clearly() {
    let rest = FakeRest::start("ws://127.0.0.1:9").await;
    let adapter = adapter(&rest);
    let target = SessionTarget::new(MessageType::Group, "300");
    rest.script([(
        429,
        json!({"message": "You are being rate limited.", "retry_after": 0.05, "global": false}),
    )]);
    let started = Instant::now();
    adapter
        .send(&target, OutboundChain::text("after the limit"))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(50));
    let requests = rest.requests();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[1].json()["content"], "after the limit");

    // A second 429 in a row is not waited out again.
    let limited = json!({"message": "You are being rate limited.", "retry_after": 0.01});
    rest.script([(429, limited.clone()), (429, limited)]);
    let error = adapter
        .send(&target, OutboundChain::text("x"))
        .await
        .unwrap_err();
    assert!(
        matches!(error, PlatformError::Action { retcode: 429, .. }),
        "{error}"
    );
    assert!(
        error.to_string().ends_with("(retry after 0.01 s)"),
        "{error}"
    );

    // A wait longer than the longest sat out fails at once and says so.
    rest.script([(
        429,
        json!({"message": "You are being rate limited.", "retry_after": 600.0}),
    )]);
    let started = Instant::now();
    let error = adapter
        .send(&target, OutboundChain::text("too soon"))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        error.to_string(),
        "discord create message failed: retcode 429: You are being rate limited. (retry after 600 s)"
    );

    rest.script([(
        403,
        json!({"message": "Missing Permissions", "code": 50013}),
    )]);
    let error = adapter
        .send(&target, OutboundChain::text("forbidden"))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "discord create message failed: retcode 403: Missing Permissions (Discord code 50013)"
    );
    assert!(!error.to_string().contains(TOKEN));

    let error = adapter
        .send(
            &SessionTarget::new(MessageType::Group, "../x"),
            OutboundChain::text("x"),
        )
        .await
        .unwrap_err();
    assert!(matches!(error, PlatformError::Unsupported(_)));
}

#[tokio::test]
async fn registry_builds_discord_from_astrbot_config() {
    let registry = PlatformRegistry::builtin();
    let entry =
        json!({"id": "my:discord", "type": "discord", "enable": true, "discord_token": TOKEN});
    let adapter = registry
        .build(&PlatformConfig::from_json(&entry).unwrap())
        .unwrap();
    assert_eq!((adapter.id(), adapter.kind()), ("my_discord", "discord"));
    let missing = json!({"id": "d", "type": "discord", "enable": true, "discord_token": ""});
    let error = registry
        .build(&PlatformConfig::from_json(&missing).unwrap())
        .err()
        .unwrap();
    assert!(matches!(error, PlatformError::Config(_)));
}

#[tokio::test]
async fn unreachable_gateway_fails_run() {
    let rest = FakeRest::start("ws://127.0.0.1:9").await;
    let mut config = config(&rest, None);
    config.gateway_url = Some(format!(
        "ws://127.0.0.1:{}",
        crate::fake_onebot::free_port()
    ));
    let bot = start(config);
    let adapter = bot.adapter.clone();
    let error = bot.result().await.unwrap_err();
    assert!(matches!(error, PlatformError::NotConnected(_)), "{error}");
    eventually(|| adapter.status().last_error.is_some()).await;
}

/// Real Discord is `wss://`: the TLS client is built in (rustls with
/// ring), so a wss URL gets as far as a TLS handshake, which a plain-TCP
/// peer fails.
#[tokio::test]
async fn wss_gateway_uses_tls() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            use tokio::io::AsyncWriteExt;
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\n\r\n").await;
        }
    });
    let rest = FakeRest::start("ws://127.0.0.1:9").await;
    let mut config = config(&rest, None);
    config.gateway_url = Some(format!("wss://127.0.0.1:{port}"));
    let error = start(config).result().await.unwrap_err().to_string();
    assert!(
        error.contains("cannot connect to the Discord gateway wss://127.0.0.1"),
        "{error}"
    );
    assert!(!error.contains("TLS support not compiled in"), "{error}");
}

//! The aiocqhttp adapter end to end over a real WebSocket on 127.0.0.1.

use std::sync::Arc;
use std::time::{Duration, Instant};

use astrbot_core::MessageType;
use astrbot_platforms::onebot::{AiocqhttpAdapter, AiocqhttpConfig};
use astrbot_platforms::{
    MessagePart, OutboundChain, OutboundPart, PlatformAdapter, PlatformError, SessionTarget,
};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{Error, Message};

use crate::fake_onebot::{free_port, group_event, Auth, FakeOneBot, WAIT};
use crate::running::{run, Running};

fn start(configure: impl FnOnce(&mut AiocqhttpConfig)) -> Running<AiocqhttpAdapter> {
    let mut config = AiocqhttpConfig::new("127.0.0.1", free_port());
    configure(&mut config);
    run(AiocqhttpAdapter::new("qq", config))
}

impl Running<AiocqhttpAdapter> {
    /// The reverse-WebSocket port the adapter listens on.
    fn port(&self) -> u16 {
        self.adapter.config().port
    }

    /// Sends in the background so the test can play the fake meanwhile.
    fn send_group(
        &self,
        group: &str,
        chain: OutboundChain,
    ) -> JoinHandle<Result<(), PlatformError>> {
        let adapter = self.adapter.clone();
        let target = SessionTarget::new(MessageType::Group, group);
        tokio::spawn(async move { adapter.send(&target, chain).await })
    }
}

#[tokio::test]
async fn group_message_in_and_reply_out() {
    let mut bot = start(|_| {});
    let mut fake = FakeOneBot::connect(bot.port(), Auth::None, "10")
        .await
        .unwrap();
    fake.send_lifecycle(10).await;
    fake.send_event(
        json!({"post_type": "meta_event", "meta_event_type": "heartbeat", "self_id": 10}),
    )
    .await;
    let event = group_event(10, 500, 7, " hello bot");
    fake.send_event(event.clone()).await;

    let message = bot.next_inbound().await;
    assert_eq!(message.umo().to_string(), "qq:GroupMessage:500");
    assert_eq!(
        (message.sender.id.as_str(), message.sender.name.as_str()),
        ("7", "Alice")
    );
    assert_eq!(
        (message.self_id.as_str(), message.message_id.clone()),
        ("10", event["message_id"].to_string())
    );
    assert!(message.mentions_bot());
    assert_eq!(message.plain_text(), " hello bot");
    assert!(bot.adapter.status().running);

    let chain = OutboundChain::new()
        .with(OutboundPart::Reply {
            message_id: "4242".into(),
        })
        .with(OutboundPart::Text("hi Alice".into()));
    let sending = bot.send_group("500", chain);
    let action = fake.next_action().await;
    assert_eq!(action["action"], "send_group_msg");
    assert_eq!(action["params"]["group_id"], 500);
    assert_eq!(
        action["params"]["message"],
        json!([
            {"type": "reply", "data": {"id": "4242"}},
            {"type": "text", "data": {"text": "hi Alice"}},
        ])
    );
    assert!(action["echo"].as_str().is_some_and(|echo| !echo.is_empty()));
    fake.answer(&action, 0, "").await;
    assert_eq!(sending.await.unwrap(), Ok(()));

    // A private message in CQ-code form, and a private send.
    fake.send_event(json!({
        "post_type": "message", "message_type": "private", "self_id": 10, "user_id": 7,
        "message_id": 5, "sender": {"nickname": "Alice"},
        "message": "look [CQ:image,file=a.jpg,url=http://127.0.0.1/a.jpg]",
    }))
    .await;
    let message = bot.next_inbound().await;
    assert_eq!(message.umo().to_string(), "qq:FriendMessage:7");
    assert!(matches!(&message.chain[1], MessagePart::Image(_)));
    let adapter = bot.adapter.clone();
    let sending = tokio::spawn(async move {
        adapter
            .send(
                &SessionTarget::new(MessageType::Friend, "7"),
                OutboundChain::text("pong"),
            )
            .await
    });
    let action = fake.next_action().await;
    assert_eq!(action["action"], "send_private_msg");
    assert_eq!(action["params"]["user_id"], 7);
    fake.answer(&action, 0, "").await;
    assert_eq!(sending.await.unwrap(), Ok(()));

    // Shutdown closes the connection with a close frame.
    bot.stop.send_replace(true);
    assert!(matches!(
        fake.next_frame().await,
        Some(Ok(Message::Close(_)))
    ));
    // Answering the close (as real implementations do) lets run end at once.
    fake.close().await;
    let result = tokio::time::timeout(WAIT, bot.task).await.unwrap().unwrap();
    assert_eq!(result, Ok(()));
}

#[tokio::test]
async fn failed_retcode_timeout_and_no_connection_are_clear_errors() {
    let mut bot = start(|config| config.action_timeout = Duration::from_millis(300));
    let error = bot
        .send_group("500", OutboundChain::text("x"))
        .await
        .unwrap()
        .unwrap_err();
    assert!(matches!(error, PlatformError::NotConnected(_)), "{error}");
    assert_eq!(
        error.to_string(),
        "not connected: no OneBot implementation is connected"
    );

    let mut fake = FakeOneBot::connect(bot.port(), Auth::None, "10")
        .await
        .unwrap();
    // Events are read only after the link is registered, so once one
    // arrives, sends can go.
    fake.send_event(group_event(10, 500, 7, "x")).await;
    bot.next_inbound().await;

    let sending = bot.send_group("500", OutboundChain::text("x"));
    let action = fake.next_action().await;
    fake.answer(&action, 1200, "bot is not in this group").await;
    let error = sending.await.unwrap().unwrap_err();
    assert_eq!(
        error.to_string(),
        "send_group_msg failed: retcode 1200: bot is not in this group"
    );

    let sending = bot.send_group("500", OutboundChain::text("y"));
    let unanswered = fake.next_action().await;
    let error = sending.await.unwrap().unwrap_err();
    assert!(matches!(error, PlatformError::Timeout { .. }), "{error}");
    assert!(
        error.to_string().contains("send_group_msg timed out"),
        "{error}"
    );
    // A late answer to a timed-out action is ignored, not misdelivered.
    fake.answer(&unanswered, 0, "").await;
    fake.close().await;
    bot.stop().await;
}

#[tokio::test]
async fn wrong_token_is_refused_and_reported() {
    let bot = start(|config| config.token = Some("s3cret".into()));
    let refused = FakeOneBot::connect(bot.port(), Auth::Bearer("guess"), "10").await;
    match refused {
        Err(Error::Http(response)) => assert_eq!(response.status(), 401),
        Err(other) => panic!("expected HTTP 401, got {other}"),
        Ok(_) => panic!("a wrong token was accepted"),
    }
    let last_error = bot.adapter.status().last_error.unwrap();
    assert!(last_error.contains("wrong access token"), "{last_error}");
    assert!(last_error.contains("127.0.0.1"), "{last_error}");

    let missing = FakeOneBot::connect(bot.port(), Auth::None, "10").await;
    assert!(matches!(missing, Err(Error::Http(ref r)) if r.status() == 401));
    assert!(bot
        .adapter
        .status()
        .last_error
        .unwrap()
        .contains("missing access token"));

    // The right token, in the query this time, is let in and clears it.
    let fake = FakeOneBot::connect(bot.port(), Auth::Query("s3cret"), "10")
        .await
        .unwrap();
    crate::eventually(|| bot.adapter.status().last_error.is_none()).await;
    fake.close().await;
    bot.stop().await;
}

#[tokio::test]
async fn reconnection_is_survived_and_sends_use_the_new_link() {
    let mut bot = start(|config| config.token = Some("t".into()));
    let mut first = FakeOneBot::connect(bot.port(), Auth::Bearer("t"), "10")
        .await
        .unwrap();
    first.send_event(group_event(10, 500, 7, "one")).await;
    assert_eq!(bot.next_inbound().await.plain_text(), "one");
    first.close().await;

    let mut second = FakeOneBot::connect(bot.port(), Auth::Bearer("t"), "10")
        .await
        .unwrap();
    second.send_event(group_event(10, 500, 7, "two")).await;
    assert_eq!(bot.next_inbound().await.plain_text(), "two");
    assert_eq!(bot.adapter.connections(), 1);

    let sending = bot.send_group("500", OutboundChain::text("after reconnect"));
    let action = second.next_action().await;
    assert_eq!(
        action["params"]["message"][0]["data"]["text"],
        "after reconnect"
    );
    second.answer(&action, 0, "").await;
    assert_eq!(sending.await.unwrap(), Ok(()));
    second.close().await;
    bot.stop().await;
}

#[tokio::test]
async fn a_taken_port_fails_run_with_the_reason() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let adapter = Arc::new(AiocqhttpAdapter::new(
        "qq",
        AiocqhttpConfig::new("127.0.0.1", port),
    ));
    let (sender, _inbound) = mpsc::channel(1);
    let (_stop, shutdown) = watch::channel(false);
    let error = adapter.run(sender, shutdown).await.unwrap_err();
    assert!(matches!(error, PlatformError::Bind { .. }), "{error}");
    assert!(error
        .to_string()
        .starts_with(&format!("cannot listen on 127.0.0.1:{port}")));
}

/// A OneBot implementation listening for forward mode on 127.0.0.1 that
/// accepts the first `refusals` connections and closes each at once with
/// code 1008 and reason "bad token" (as on a wrong access token); later
/// connections get the lifecycle event and stay open. Returns its URL and
/// when each connection was accepted.
async fn forward_server(refusals: usize) -> (String, mpsc::UnboundedReceiver<Instant>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}/", listener.local_addr().unwrap());
    let (accepted, connections) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        for count in 1.. {
            let (stream, _) = listener.accept().await.unwrap();
            let Ok(mut socket) = tokio_tungstenite::accept_async(stream).await else {
                continue;
            };
            let _ = accepted.send(Instant::now());
            if count <= refusals {
                let close = CloseFrame {
                    code: CloseCode::Policy,
                    reason: "bad token".into(),
                };
                let _ = socket.close(Some(close)).await;
            } else {
                let lifecycle = json!({
                    "post_type": "meta_event", "meta_event_type": "lifecycle",
                    "sub_type": "connect", "self_id": 10, "time": 1,
                });
                let _ = socket
                    .send(Message::Text(lifecycle.to_string().into()))
                    .await;
            }
            // Read on, so a close from either side is answered.
            while let Some(Ok(_)) = socket.next().await {}
        }
    });
    (url, connections)
}

async fn next_connection(connections: &mut mpsc::UnboundedReceiver<Instant>) -> Instant {
    tokio::time::timeout(WAIT, connections.recv())
        .await
        .expect("the adapter connects again within the wait")
        .unwrap()
}

#[tokio::test]
async fn a_forward_connection_closed_before_any_event_is_a_failure_with_its_reason() {
    let (url, mut connections) = forward_server(2).await;
    let token = "wrong-s3cret";
    let bot = start(|config| {
        config.forward_url = Some(url);
        config.token = Some(token.into());
    });

    next_connection(&mut connections).await;
    let second = next_connection(&mut connections).await;
    // The first refusal is recorded, and a handshake alone does not clear it.
    let status = bot.adapter.status();
    assert!(status.running);
    let error = status.last_error.expect("the refusal is the last error");
    assert!(
        error.contains("1008") && error.contains("bad token"),
        "{error}"
    );
    assert!(!error.contains(token), "{error}");

    // The backoff grew (1 s, then 2 s) instead of starting over.
    let third = next_connection(&mut connections).await;
    let gap = third - second;
    assert!(gap >= Duration::from_millis(1800), "retried after {gap:?}");

    // A connection that delivers an event is a recovery.
    crate::eventually(|| bot.adapter.status().last_error.is_none()).await;
    assert!(bot.adapter.status().running);
    bot.stop().await;
}

//! Discord end to end: the server's Discord bot asks a fake REST API for
//! the gateway, connects to the fake gateway and identifies; guild messages
//! with the wake prefix or a mention, DMs and image attachments get LLM
//! answers posted to the channel; proactive sends through
//! `/api/v1/im/message` reach it; a rejected token shows in the status.

// The same fake the platforms crate tests its adapter with.
#[path = "../../../astrbot-platforms/tests/platforms/fake_discord.rs"]
#[allow(dead_code)]
mod fake_discord;

use std::time::Duration;

use fake_discord::{guild_message, FakeGateway, FakeRest, GatewayConn, Recorded, BOT_ID, TOKEN};
use fake_openai::Behaviour;
use serde_json::{json, Value};

use crate::helpers::*;

/// A server whose Discord bot is connected to the fake and READY.
struct Connected {
    app: TestApp,
    rest: FakeRest,
    /// Kept open for the whole test: dropping it makes the bot reconnect.
    conn: GatewayConn,
    _gateway: FakeGateway,
}

async fn app_with_discord(token: &str) -> (TestApp, FakeRest, FakeGateway) {
    let gateway = FakeGateway::bind().await;
    let rest = FakeRest::start(&gateway.url()).await;
    let app = spawn_app_with(Behaviour::default(), |config| {
        config["platform"] = json!([{
            "id": "dc", "type": "discord", "enable": true, "discord_token": token,
            "discord_api_base": rest.api_base,
        }]);
    })
    .await;
    (app, rest, gateway)
}

async fn connected() -> Connected {
    let (app, rest, gateway) = app_with_discord(TOKEN).await;
    let mut conn = gateway.accept().await;
    conn.hello(45_000).await;
    let identify = conn.next_non_heartbeat().await.unwrap();
    assert_eq!(identify["op"], 2, "{identify}");
    assert_eq!(identify["d"]["token"], TOKEN);
    conn.ready(1, "session-1", &gateway.url()).await;
    Connected {
        app,
        rest,
        conn,
        _gateway: gateway,
    }
}

/// Waits (bounded) until `count` messages were posted to channels.
async fn wait_posts(rest: &FakeRest, count: usize) -> Vec<Recorded> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let posts: Vec<Recorded> = rest
            .requests()
            .into_iter()
            .filter(|request| request.path.starts_with("/channels/"))
            .collect();
        if posts.len() >= count {
            return posts;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} messages posted, expected {count}",
            posts.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn dm(seq_id: &str, content: &str) -> Value {
    let mut message = guild_message(seq_id, content, json!([]));
    let object = message.as_object_mut().unwrap();
    object.remove("guild_id");
    object.remove("member");
    message["channel_id"] = json!("400");
    message
}

#[tokio::test]
async fn a_guild_message_with_the_wake_prefix_is_answered_in_that_channel() {
    let mut bot = connected().await;

    bot.conn
        .dispatch(
            2,
            "MESSAGE_CREATE",
            guild_message("900", "/what is up", json!([])),
        )
        .await;
    let posts = wait_posts(&bot.rest, 1).await;

    assert_eq!(posts[0].path, "/channels/300/messages");
    assert_eq!(posts[0].authorization, format!("Bot {TOKEN}"));
    assert_eq!(
        posts[0].json()["content"],
        "Echo: what is up",
        "{:?}",
        posts[0]
    );
}

#[tokio::test]
async fn a_mention_of_the_bot_wakes_it_in_a_guild() {
    let mut bot = connected().await;

    let mentions = json!([{"id": BOT_ID, "username": "astrbot", "bot": true}]);
    bot.conn
        .dispatch(
            2,
            "MESSAGE_CREATE",
            guild_message("900", &format!("<@{BOT_ID}> how are you"), mentions),
        )
        .await;
    let posts = wait_posts(&bot.rest, 1).await;

    assert_eq!(posts[0].path, "/channels/300/messages");
    assert_eq!(posts[0].json()["content"], "Echo: how are you");
}

#[tokio::test]
async fn guild_chatter_without_a_wake_is_ignored_but_dms_are_answered() {
    let mut bot = connected().await;

    bot.conn
        .dispatch(
            2,
            "MESSAGE_CREATE",
            guild_message("900", "just chatting", json!([])),
        )
        .await;
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(wait_posts(&bot.rest, 0).await.is_empty());
    assert!(bot.app.chat_requests().is_empty());

    bot.conn
        .dispatch(3, "MESSAGE_CREATE", dm("901", "hi bot"))
        .await;
    let posts = wait_posts(&bot.rest, 1).await;

    assert_eq!(posts.len(), 1);
    assert_eq!(posts[0].path, "/channels/400/messages");
    assert_eq!(posts[0].json()["content"], "Echo: hi bot");
    let asked = bot.app.chat_requests();
    assert_eq!(asked.len(), 1);
    assert!(!asked[0].to_string().contains("just chatting"), "{asked:?}");
}

#[tokio::test]
async fn an_image_attachment_reaches_the_model() {
    let mut bot = connected().await;
    let url = "https://cdn.discordapp.com/attachments/300/1/cat.png";
    let mut message = guild_message("900", "/describe this", json!([]));
    message["attachments"] = json!([{
        "id": "1", "filename": "cat.png", "content_type": "image/png", "size": 1234,
        "url": url, "proxy_url": "https://media.discordapp.net/attachments/300/1/cat.png",
    }]);

    bot.conn.dispatch(2, "MESSAGE_CREATE", message).await;
    let posts = wait_posts(&bot.rest, 1).await;

    assert_eq!(posts[0].json()["content"], "Echo: describe this");
    let request = &bot.app.chat_requests()[0];
    let user = request["messages"].as_array().unwrap().last().unwrap();
    let image = user["content"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|part| part["type"] == "image_url")
        .unwrap_or_else(|| panic!("no image part in {user}"));
    assert_eq!(image["image_url"]["url"], url);
}

#[tokio::test]
async fn proactive_sends_reach_the_channel() {
    let bot = connected().await;
    let (key, _) = bot.app.create_key(&["im"]).await;
    bot.app.wait_bot_running(&key, "dc").await;

    let (_, body) = bot
        .app
        .post_json(
            "/api/v1/im/message",
            Some(&key),
            json!({"umo": "dc:GroupMessage:300", "message": "scheduled notice"}),
        )
        .await;

    assert_eq!(body["status"], "ok", "{body}");
    let posts = wait_posts(&bot.rest, 1).await;
    assert_eq!(posts[0].path, "/channels/300/messages");
    assert_eq!(posts[0].json()["content"], "scheduled notice");
}

#[tokio::test]
async fn a_rejected_token_shows_in_the_bot_status() {
    let (app, _rest, _gateway) = app_with_discord("wrong.bot.token").await;
    let (key, _) = app.create_key(&["im"]).await;

    let bot = app.wait_bot_error(&key, "dc").await;

    assert_eq!(bot["type"], "discord");
    assert_eq!(bot["running"], false, "{bot}");
    let error = bot["last_error"].as_str().unwrap();
    assert!(error.contains("Discord rejected the bot token"), "{error}");
    assert!(!error.contains("wrong.bot.token"), "{error}");
}

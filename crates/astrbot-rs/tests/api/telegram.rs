//! Telegram end to end: the server's Telegram bot long-polls a fake Bot API
//! on 127.0.0.1; group messages with the wake prefix, private messages and
//! photos get LLM answers through `sendMessage`; proactive sends through
//! `/api/v1/im/message` reach it; a rejected token shows in the status.

// The same fake the platforms crate tests its adapter with.
#[path = "../../../astrbot-platforms/tests/platforms/fake_telegram.rs"]
#[allow(dead_code)]
mod fake_telegram;

use std::time::Duration;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use fake_openai::Behaviour;
use fake_telegram::FakeTelegram;
use serde_json::{json, Value};

use crate::helpers::*;

const TOKEN: &str = "123456:SERVER-token_value";
const GROUP: i64 = -100777;

async fn app_with_telegram(token: &str) -> (TestApp, FakeTelegram) {
    let fake = FakeTelegram::start(TOKEN).await;
    let app = spawn_app_with(Behaviour::default(), |config| {
        config["platform"] = json!([{
            "id": "tg", "type": "telegram", "enable": true, "telegram_token": token,
            "telegram_api_base_url": fake.api_base(),
            "telegram_file_base_url": fake.file_base(),
            "telegram_poll_timeout": 1,
            "telegram_media_group_timeout": 0.3,
        }]);
    })
    .await;
    (app, fake)
}

fn group_message(message_id: i64, text: &str) -> Value {
    json!({
        "message_id": message_id, "date": 1700000000,
        "chat": {"id": GROUP, "type": "supergroup", "title": "Testers"},
        "from": {"id": 55, "is_bot": false, "first_name": "Ada", "username": "ada"},
        "text": text,
    })
}

#[tokio::test]
async fn a_group_message_with_the_wake_prefix_is_answered_in_that_group() {
    let (_app, fake) = app_with_telegram(TOKEN).await;

    fake.queue_message(group_message(1, "/what is up"));
    let sent = fake.wait_calls("sendMessage", 1).await;

    assert_eq!(sent[0]["chat_id"], GROUP, "{}", sent[0]);
    assert_eq!(sent[0]["text"], "Echo: what is up");
}

#[tokio::test]
async fn a_mention_of_the_bot_wakes_it_in_a_group() {
    let (_app, fake) = app_with_telegram(TOKEN).await;
    let mut message = group_message(1, "@AstrTestBot how are you");
    message["entities"] = json!([{"type": "mention", "offset": 0, "length": 12}]);

    fake.queue_message(message);
    let sent = fake.wait_calls("sendMessage", 1).await;

    assert_eq!(sent[0]["chat_id"], GROUP);
    assert_eq!(sent[0]["text"], "Echo: how are you");
}

#[tokio::test]
async fn group_chatter_without_a_wake_is_ignored_but_private_messages_are_answered() {
    let (app, fake) = app_with_telegram(TOKEN).await;

    fake.queue_message(group_message(1, "just chatting"));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(fake.calls("sendMessage").is_empty());
    assert!(app.chat_requests().is_empty(), "{:?}", app.chat_requests());

    fake.queue_message(json!({
        "message_id": 2, "date": 1700000001,
        "chat": {"id": 55, "type": "private", "first_name": "Ada"},
        "from": {"id": 55, "is_bot": false, "first_name": "Ada"},
        "text": "hi bot",
    }));
    let sent = fake.wait_calls("sendMessage", 1).await;

    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0]["chat_id"], 55);
    assert_eq!(sent[0]["text"], "Echo: hi bot");
    let asked = app.chat_requests();
    assert_eq!(asked.len(), 1);
    assert!(!asked[0].to_string().contains("just chatting"), "{asked:?}");
}

#[tokio::test]
async fn a_photo_in_a_group_message_reaches_the_model() {
    let (app, fake) = app_with_telegram(TOKEN).await;

    fake.queue_message(json!({
        "message_id": 9, "date": 1700000000,
        "chat": {"id": GROUP, "type": "supergroup", "title": "Testers"},
        "from": {"id": 55, "is_bot": false, "first_name": "Ada"},
        "photo": [
            {"file_id": "small-id", "file_unique_id": "s", "width": 90, "height": 67},
            {"file_id": "big-id", "file_unique_id": "b", "width": 1280, "height": 960},
        ],
        "caption": "/describe this",
    }));
    let sent = fake.wait_calls("sendMessage", 1).await;

    assert_eq!(sent[0]["text"], "Echo: describe this");
    let request = &app.chat_requests()[0];
    let user = request["messages"].as_array().unwrap().last().unwrap();
    let image = user["content"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|part| part["type"] == "image_url")
        .unwrap_or_else(|| panic!("no image part in {user}"));
    // The photo's bytes, not Telegram's download URL, which holds the bot
    // token and would hand it to the provider.
    let bytes = fake_telegram::file_bytes("photos/big-id.jpg");
    assert_eq!(
        image["image_url"]["url"],
        format!("data:image/jpeg;base64,{}", STANDARD.encode(bytes))
    );
    assert!(!request.to_string().contains(TOKEN), "{request}");
}

#[tokio::test]
async fn an_album_is_answered_once_with_all_its_photos() {
    let (app, fake) = app_with_telegram(TOKEN).await;

    for (number, caption) in [(1, Some("what are these?")), (2, None), (3, None)] {
        let mut message = json!({
            "message_id": 20 + number, "date": 1700000000, "media_group_id": "album-1",
            "chat": {"id": 55, "type": "private", "first_name": "Ada"},
            "from": {"id": 55, "is_bot": false, "first_name": "Ada"},
            "photo": [{"file_id": format!("photo-{number}"), "file_unique_id": "u",
                       "width": 800, "height": 600}],
        });
        if let Some(caption) = caption {
            message["caption"] = json!(caption);
        }
        fake.queue_message(message);
    }
    let sent = fake.wait_calls("sendMessage", 1).await;
    tokio::time::sleep(Duration::from_millis(800)).await;

    assert_eq!(fake.calls("sendMessage").len(), 1, "{sent:?}");
    assert_eq!(sent[0]["text"], "Echo: what are these?");
    let requests = app.chat_requests();
    assert_eq!(requests.len(), 1);
    let user = requests[0]["messages"].as_array().unwrap().last().unwrap();
    let images = user["content"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|part| part["type"] == "image_url")
        .count();
    assert_eq!(images, 3, "{user}");
}

#[tokio::test]
async fn proactive_sends_reach_the_chat() {
    let (app, fake) = app_with_telegram(TOKEN).await;
    let (key, _) = app.create_key(&["im"]).await;
    app.wait_bot_running(&key, "tg").await;

    let (_, body) = app
        .post_json(
            "/api/v1/im/message",
            Some(&key),
            json!({"umo": format!("tg:GroupMessage:{GROUP}"), "message": "scheduled notice"}),
        )
        .await;

    assert_eq!(body["status"], "ok", "{body}");
    let sent = fake.wait_calls("sendMessage", 1).await;
    assert_eq!(sent[0]["chat_id"], GROUP);
    assert_eq!(sent[0]["text"], "scheduled notice");
}

#[tokio::test]
async fn a_rejected_token_shows_in_the_bot_status() {
    let (app, _fake) = app_with_telegram("999:WRONG-token").await;
    let (key, _) = app.create_key(&["im"]).await;

    let last = app.wait_bot_error(&key, "tg").await;

    assert_eq!(last["type"], "telegram");
    assert_eq!(last["running"], false, "{last}");
    let error = last["last_error"].as_str().unwrap();
    assert!(error.contains("Telegram rejected the bot token"), "{error}");
    assert!(!error.contains("WRONG"), "{error}");
}

#[tokio::test]
async fn with_streaming_the_answer_grows_in_one_message() {
    let fake = FakeTelegram::start(TOKEN).await;
    let behaviour = Behaviour {
        token_delay: Duration::from_millis(250),
        ..Behaviour::default()
    };
    let _app = spawn_app_with(behaviour, |config| {
        config["provider_settings"]["streaming_response"] = json!(true);
        config["platform_settings"] = json!({"reply_prefix": "> "});
        config["platform"] = json!([{
            "id": "tg", "type": "telegram", "enable": true, "telegram_token": TOKEN,
            "telegram_api_base_url": fake.api_base(),
            "telegram_file_base_url": fake.file_base(),
            "telegram_poll_timeout": 1,
        }]);
    })
    .await;
    let whole = "> Echo: stream this answer please";

    fake.queue_message(group_message(1, "/stream this answer please"));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let shown = loop {
        let edits = fake.calls("editMessageText");
        let shown = match edits.last() {
            Some(edit) => edit["text"].clone(),
            None => fake
                .calls("sendMessage")
                .first()
                .map_or(Value::Null, |sent| sent["text"].clone()),
        };
        if shown == whole || tokio::time::Instant::now() > deadline {
            break shown;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };

    assert_eq!(shown, whole);
    let sent = fake.calls("sendMessage");
    assert_eq!(sent.len(), 1, "one message, edited: {sent:?}");
    let first = sent[0]["text"].as_str().unwrap();
    assert!(
        first.starts_with("> Echo:") && first.len() < whole.len(),
        "the first text is sent before the answer is complete: {first}"
    );
    for edit in fake.calls("editMessageText") {
        assert_eq!(edit["chat_id"], GROUP);
        // The fake numbers the messages it sends from 1000.
        assert_eq!(edit["message_id"], 1000, "{edit}");
    }
}

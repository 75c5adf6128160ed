//! The telegram adapter end to end against a fake Telegram Bot API server
//! on 127.0.0.1 that speaks the real JSON shapes (getMe, getUpdates with
//! offset/timeout long polling, getFile, sendMessage, multipart sendPhoto
//! and sendDocument, editMessageText) and against its own webhook server.

use std::time::{Duration, Instant};

use astrbot_core::MessageType;
use astrbot_platforms::telegram::{TelegramAdapter, TelegramConfig, TelegramMode, MAX_TEXT};
use astrbot_platforms::{
    Backoff, Media, MessagePart, OutboundChain, OutboundPart, PlatformAdapter, PlatformError,
    PlatformManager, PlatformRegistry, SessionTarget,
};
use serde_json::{json, Value};
use tokio::sync::mpsc;

use crate::eventually;
use crate::fake_onebot::{free_port, WAIT};
use crate::fake_telegram::FakeTelegram;
use crate::running::{run, Running};

const TOKEN: &str = "123456:TEST-token_value";

fn config(fake: &FakeTelegram, token: &str) -> TelegramConfig {
    TelegramConfig {
        api_base_url: fake.api_base(),
        file_base_url: fake.file_base(),
        poll_timeout: Duration::from_secs(2),
        ..TelegramConfig::new(token)
    }
}

fn start(config: TelegramConfig) -> Running<TelegramAdapter> {
    run(TelegramAdapter::new("tg", config).unwrap())
}

fn group_message(message_id: i64, text: &str) -> Value {
    json!({
        "message_id": message_id, "date": 1700000000,
        "chat": {"id": -100777, "type": "supergroup", "title": "Testers"},
        "from": {"id": 55, "is_bot": false, "first_name": "Ada", "last_name": "Lovelace", "username": "ada"},
        "text": text,
    })
}

#[tokio::test]
async fn group_message_arrives_once_and_the_offset_advances() {
    let fake = FakeTelegram::start(TOKEN).await;
    let mut command = group_message(1, "/ask@AstrTestBot hello");
    command["entities"] = json!([{"type": "bot_command", "offset": 0, "length": 16}]);
    let first = fake.queue_message(command);
    let mut bot = start(config(&fake, TOKEN));

    let message = bot.next_inbound().await;
    assert_eq!(message.umo().to_string(), "tg:GroupMessage:-100777");
    assert_eq!(message.message_type, MessageType::Group);
    assert_eq!(
        (message.sender.id.as_str(), message.sender.name.as_str()),
        ("55", "Ada Lovelace")
    );
    assert_eq!(
        (message.self_id.as_str(), message.message_id.as_str()),
        ("4242", "1")
    );
    // The command keeps its text without `@botname`.
    assert_eq!(message.plain_text(), "/ask hello");
    assert!(bot.adapter.status().running);
    assert_eq!(bot.adapter.identity().unwrap().username, "AstrTestBot");

    // The next poll confirms the update, so it is never delivered again.
    let polls = fake.wait_calls("getUpdates", 2).await;
    assert_eq!(polls[0]["offset"], 0);
    assert_eq!(polls[0]["timeout"], 2);
    assert_eq!(polls[0]["allowed_updates"], json!(["message"]));
    assert_eq!(polls[1]["offset"], first + 1);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(bot.inbound.try_recv().is_err(), "an update came twice");

    // An update queued while the adapter holds a long poll arrives at once.
    let private = json!({
        "message_id": 2, "date": 1700000001,
        "chat": {"id": 55, "type": "private", "first_name": "Ada"},
        "from": {"id": 55, "is_bot": false, "first_name": "", "username": "ada"},
        "text": "psst",
    });
    let started = Instant::now();
    let second = fake.queue_message(private);
    let message = bot.next_inbound().await;
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(message.umo().to_string(), "tg:FriendMessage:55");
    assert_eq!(message.sender.name, "ada");
    assert_eq!(message.plain_text(), "psst");
    let polls = fake.wait_calls("getUpdates", 4).await;
    assert!(polls.last().unwrap()["offset"] == second + 1);

    // Shutdown interrupts a held long poll.
    bot.stop().await;
}

#[tokio::test]
async fn polling_survives_api_failures() {
    let fake = FakeTelegram::start(TOKEN).await;
    fake.fail(
        "getUpdates",
        409,
        "Conflict: terminated by other getUpdates request; make sure that only one bot instance is running",
    );
    let mut bot = start(config(&fake, TOKEN));
    fake.wait_calls("getUpdates", 2).await;
    let status = bot.adapter.status();
    assert!(status.running);
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|error| error.contains("getUpdates failed: retcode 409: Conflict")),
        "{status:?}"
    );

    fake.recover("getUpdates");
    fake.queue_message(group_message(4, "back"));
    assert_eq!(bot.next_inbound().await.plain_text(), "back");
    assert_eq!(bot.adapter.status().last_error, None);
    bot.stop().await;
}

#[tokio::test]
async fn a_slow_photo_holds_up_its_own_chat_only() {
    let fake = FakeTelegram::start(TOKEN).await;
    fake.slow_files(Duration::from_secs(2));
    let private = |chat: i64, message_id: i64| {
        json!({
            "message_id": message_id, "date": 1700000000,
            "chat": {"id": chat, "type": "private", "first_name": "Ada"},
            "from": {"id": chat, "is_bot": false, "first_name": "Ada"},
        })
    };
    let mut photo = private(1, 1);
    photo["photo"] = json!([{"file_id": "slow", "file_unique_id": "s", "width": 9, "height": 9}]);
    let mut after_the_photo = private(1, 2);
    after_the_photo["text"] = json!("and this one?");
    let mut other_chat = private(2, 3);
    other_chat["text"] = json!("hello");
    for message in [photo, after_the_photo, other_chat] {
        fake.queue_message(message);
    }
    let started = Instant::now();
    let mut bot = start(config(&fake, TOKEN));

    let first = bot.next_inbound().await;
    assert_eq!(first.session_id, "2", "the other chat goes first");
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    let second = bot.next_inbound().await;
    let third = bot.next_inbound().await;
    assert_eq!(
        (second.message_id.as_str(), third.message_id.as_str()),
        ("1", "2")
    );
    bot.stop().await;
}

#[tokio::test]
async fn an_album_waits_for_its_slow_photo_and_holds_back_what_came_after() {
    let fake = FakeTelegram::start(TOKEN).await;
    fake.slow_file("slow", Duration::from_millis(1500));
    let part = |message_id: i64, file_id: &str| {
        json!({
            "message_id": message_id, "date": 1700000000, "media_group_id": "album-7",
            "chat": {"id": 1, "type": "private", "first_name": "Ada"},
            "from": {"id": 1, "is_bot": false, "first_name": "Ada"},
            "photo": [{"file_id": file_id, "file_unique_id": "u", "width": 9, "height": 9}],
        })
    };
    let mut first = part(1, "first");
    first["caption"] = json!("what are these?");
    let mut after = part(4, "unused");
    after.as_object_mut().unwrap().remove("photo");
    after.as_object_mut().unwrap().remove("media_group_id");
    after["text"] = json!("and which is best?");
    for message in [first, part(2, "slow"), part(3, "third"), after] {
        fake.queue_message(message);
    }
    let mut bot = start(TelegramConfig {
        media_group_timeout: Duration::from_millis(500),
        ..config(&fake, TOKEN)
    });

    let album = bot.next_inbound().await;
    let text = bot.next_inbound().await;

    let photos = album
        .chain
        .iter()
        .filter(|part| matches!(part, MessagePart::Image(Media::Bytes { .. })))
        .count();
    assert_eq!(
        photos, 3,
        "one message with every photo: {:?}",
        album.message_id
    );
    assert_eq!(album.plain_text(), "what are these?");
    assert_eq!(text.plain_text(), "and which is best?");
    bot.stop().await;
}

#[tokio::test]
async fn photo_reply_and_mention_are_parsed() {
    let fake = FakeTelegram::start(TOKEN).await;
    let caption = "@AstrTestBot what is this?";
    fake.queue_message(json!({
        "message_id": 9, "date": 1700000000,
        "chat": {"id": -100777, "type": "supergroup", "title": "Testers"},
        "from": {"id": 55, "is_bot": false, "first_name": "Ada"},
        "photo": [
            {"file_id": "small-id", "file_unique_id": "s", "width": 90, "height": 67, "file_size": 1200},
            {"file_id": "big-id", "file_unique_id": "b", "width": 1280, "height": 960, "file_size": 98000},
            {"file_id": "mid-id", "file_unique_id": "m", "width": 320, "height": 240, "file_size": 15000},
        ],
        "caption": caption,
        "caption_entities": [{"type": "mention", "offset": 0, "length": 12}],
        "reply_to_message": {
            "message_id": 8, "date": 1699999999,
            "chat": {"id": -100777, "type": "supergroup"},
            "from": {"id": 56, "is_bot": false, "first_name": "Bob"},
            "text": "the earlier message",
        },
    }));
    fake.queue_message(json!({
        "message_id": 10, "date": 1700000000,
        "chat": {"id": -100777, "type": "supergroup"},
        "from": {"id": 56, "is_bot": false, "first_name": "Bob"},
        "document": {"file_id": "doc-id", "file_unique_id": "d", "file_name": "notes.pdf", "mime_type": "application/pdf"},
    }));
    let mut bot = start(config(&fake, TOKEN));

    let message = bot.next_inbound().await;
    assert!(message.mentions_bot());
    let photo = Media::Bytes {
        data: crate::fake_telegram::file_bytes("photos/big-id.jpg"),
        mime: "image/jpeg".into(),
    };
    assert_eq!(
        message.chain,
        vec![
            MessagePart::Reply {
                message_id: "8".into(),
                quoted_text: Some("the earlier message".into()),
                to_bot: false,
            },
            MessagePart::At {
                target_id: "4242".into(),
                is_bot: true,
            },
            MessagePart::Image(photo),
            MessagePart::Text("what is this?".into()),
        ]
    );
    assert_eq!(fake.calls("getFile")[0], json!({"file_id": "big-id"}));

    let message = bot.next_inbound().await;
    assert!(!message.mentions_bot());
    assert_eq!(
        message.chain,
        vec![MessagePart::File {
            name: "notes.pdf".into(),
            source: Media::Url(String::new()),
        }]
    );
    assert_eq!(fake.calls("getFile").len(), 1, "a document is not fetched");
    bot.stop().await;
}

#[tokio::test]
async fn sends_text_photos_files_and_voice() {
    let fake = FakeTelegram::start(TOKEN).await;
    let adapter = TelegramAdapter::new("tg", config(&fake, TOKEN)).unwrap();
    let group = SessionTarget::new(MessageType::Group, "-100777");

    let chain = OutboundChain::new()
        .with(OutboundPart::Reply {
            message_id: "9".into(),
        })
        .with(OutboundPart::Text("**hello** _there_ [".into()));
    adapter.send(&group, chain).await.unwrap();
    let sent = fake.calls("sendMessage");
    assert_eq!(
        sent,
        vec![json!({
            "chat_id": -100777, "text": "**hello** _there_ [",
            "reply_parameters": {"message_id": 9, "allow_sending_without_reply": true},
        })]
    );

    // Long answers are split at Telegram's limit.
    let long = "a".repeat(5000);
    let private = SessionTarget::new(MessageType::Friend, "55");
    adapter
        .send(&private, OutboundChain::text(long))
        .await
        .unwrap();
    let sent = fake.calls("sendMessage");
    assert_eq!(sent.len(), 3);
    assert_eq!(sent[1]["chat_id"], 55);
    assert_eq!(sent[1]["text"].as_str().unwrap().len(), 4096);
    assert_eq!(sent[2]["text"].as_str().unwrap().len(), 904);
    assert!(sent[1].get("reply_parameters").is_none());

    // Bytes are uploaded as multipart; text before a picture goes first.
    let png = vec![0x89, b'P', b'N', b'G', 0, 1, 2, 3];
    let chain = OutboundChain::new()
        .with(OutboundPart::Text("a picture:".into()))
        .with(OutboundPart::Image(Media::Bytes {
            data: png.clone(),
            mime: "image/png".into(),
        }));
    adapter.send(&group, chain).await.unwrap();
    assert_eq!(fake.calls("sendMessage")[3]["text"], "a picture:");
    let photo = &fake.calls("sendPhoto")[0];
    assert_eq!(photo["chat_id"], "-100777");
    assert_eq!(
        photo["photo"],
        json!({"file_name": "image.png", "content_type": "image/png", "len": png.len()})
    );

    // A URL is handed to Telegram to fetch.
    let chain = OutboundChain::new().with(OutboundPart::Image(Media::Url(
        "https://example.invalid/cat.jpg".into(),
    )));
    adapter.send(&group, chain).await.unwrap();
    assert_eq!(
        fake.calls("sendPhoto")[1],
        json!({"chat_id": -100777, "photo": "https://example.invalid/cat.jpg"})
    );

    // A local file as a document, an .ogg as a voice message.
    let dir = std::env::temp_dir().join(format!("astrbot-tg-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let report = dir.join("report.pdf");
    std::fs::write(&report, b"%PDF-1.4 fake").unwrap();
    let chain = OutboundChain::new()
        .with(OutboundPart::File {
            name: "report.pdf".into(),
            source: Media::Path(report.clone()),
        })
        .with(OutboundPart::File {
            name: "answer.ogg".into(),
            source: Media::Url("https://example.invalid/answer.ogg".into()),
        });
    adapter.send(&group, chain).await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    let document = &fake.calls("sendDocument")[0];
    assert_eq!(document["document"]["file_name"], "report.pdf");
    assert_eq!(document["document"]["len"], 13);
    assert_eq!(
        fake.calls("sendVoice")[0],
        json!({"chat_id": -100777, "voice": "https://example.invalid/answer.ogg"})
    );
}

#[tokio::test]
async fn api_errors_are_clear_and_hold_no_token() {
    let fake = FakeTelegram::start(TOKEN).await;
    fake.fail("sendMessage", 400, "Bad Request: chat not found");
    let adapter = TelegramAdapter::new("tg", config(&fake, TOKEN)).unwrap();
    let error = adapter
        .send(
            &SessionTarget::new(MessageType::Group, "-1"),
            OutboundChain::text("x"),
        )
        .await
        .unwrap_err();
    assert_eq!(
        error,
        PlatformError::Action {
            action: "sendMessage".into(),
            retcode: 400,
            message: "Bad Request: chat not found".into(),
        }
    );
    assert_eq!(
        error.to_string(),
        "sendMessage failed: retcode 400: Bad Request: chat not found"
    );

    // An unreachable API names the method and hides the URL with the token.
    let closed = TelegramConfig {
        api_base_url: format!("http://127.0.0.1:{}/bot", free_port()),
        ..config(&fake, TOKEN)
    };
    let adapter = TelegramAdapter::new("tg", closed).unwrap();
    let error = adapter
        .send(
            &SessionTarget::new(MessageType::Group, "-1"),
            OutboundChain::text("x"),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("sendMessage: cannot reach the Telegram Bot API"),
        "{error}"
    );
    assert!(
        !error.contains(TOKEN) && !error.contains("TEST-token"),
        "{error}"
    );
}

#[tokio::test]
async fn a_short_flood_wait_is_sat_out_once_and_a_long_one_fails_at_once() {
    let fake = FakeTelegram::start(TOKEN).await;
    let adapter = TelegramAdapter::new("tg", config(&fake, TOKEN)).unwrap();
    let group = SessionTarget::new(MessageType::Group, "-100777");

    fake.rate_limit_once("sendMessage", 1);
    let started = Instant::now();
    adapter
        .send(&group, OutboundChain::text("after the wait"))
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_secs(1));
    let sent = fake.calls("sendMessage");
    assert_eq!(sent.len(), 2, "refused once, then sent");
    assert_eq!(sent[1]["text"], "after the wait");

    // Uploads are sent again whole.
    fake.rate_limit_once("sendPhoto", 1);
    let photo = OutboundPart::Image(Media::Bytes {
        data: vec![1, 2, 3],
        mime: "image/png".into(),
    });
    adapter
        .send(&group, OutboundChain::new().with(photo))
        .await
        .unwrap();
    let photos = fake.calls("sendPhoto");
    assert_eq!(photos.len(), 2);
    assert_eq!(photos[1]["photo"]["len"], 3);

    fake.rate_limit_once("sendMessage", 600);
    let started = Instant::now();
    let error = adapter
        .send(&group, OutboundChain::text("too soon"))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "did not sit out 600 s"
    );
    assert_eq!(
        error.to_string(),
        "sendMessage failed: retcode 429: Too Many Requests: retry after 600 (retry after 600 s)"
    );
}

#[tokio::test]
async fn a_bad_token_fails_run_with_a_clear_error() {
    let fake = FakeTelegram::start(TOKEN).await;
    let wrong = "999:WRONG-token";
    let bot = start(config(&fake, wrong));
    let error = tokio::time::timeout(WAIT, bot.task)
        .await
        .unwrap()
        .unwrap()
        .unwrap_err()
        .to_string();
    assert!(error.contains("Telegram rejected the bot token"), "{error}");
    assert!(!error.contains("WRONG"), "{error}");
    let status = bot.adapter.status();
    assert!(!status.running);
    assert_eq!(status.last_error, Some(error));

    // Through the registry and manager, the status says why.
    let platforms = json!([{
        "id": "tg", "type": "telegram", "enable": true, "telegram_token": wrong,
        "telegram_api_base_url": fake.api_base(), "telegram_poll_timeout": 1,
    }]);
    let manager = PlatformManager::from_config(&PlatformRegistry::builtin(), &platforms)
        .with_backoff(Backoff {
            initial: Duration::from_millis(50),
            max: Duration::from_millis(100),
        });
    let (sender, _inbound) = mpsc::channel(4);
    manager.start(sender);
    eventually(|| manager.status()[0].restarts >= 2).await;
    let status = &manager.status()[0];
    assert_eq!((status.kind.as_str(), status.running), ("telegram", false));
    assert!(status
        .last_error
        .as_deref()
        .is_some_and(|error| error.contains("Telegram rejected the bot token")));
    manager.shutdown().await;
}

#[tokio::test]
async fn webhook_mode_checks_the_secret_token() {
    let fake = FakeTelegram::start(TOKEN).await;
    let port = free_port();
    let secret = "s3cret_Token-1";
    let mut bot = start(TelegramConfig {
        mode: TelegramMode::Webhook,
        webhook_host: "127.0.0.1".into(),
        webhook_port: port,
        webhook_secret: Some(secret.into()),
        webhook_url: Some("https://bot.example.invalid/telegram".into()),
        ..config(&fake, TOKEN)
    });
    let adapter = bot.adapter.clone();
    eventually(|| adapter.status().running).await;
    assert_eq!(
        fake.calls("setWebhook"),
        vec![json!({
            "url": "https://bot.example.invalid/telegram", "secret_token": secret,
            "allowed_updates": ["message"],
        })]
    );
    assert!(fake.calls("getUpdates").is_empty());

    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/telegram");
    let update = json!({"update_id": 5, "message": group_message(3, "@AstrTestBot hi")});
    let update = {
        let mut update = update;
        update["message"]["entities"] = json!([{"type": "mention", "offset": 0, "length": 12}]);
        update
    };
    for presented in [Some("wrong"), Some("s3cret_Token-"), None] {
        let mut request = client.post(&url).json(&update);
        if let Some(presented) = presented {
            request = request.header("X-Telegram-Bot-Api-Secret-Token", presented);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{presented:?}");
    }
    assert!(bot.inbound.try_recv().is_err());
    // A stranger is refused on the head alone: its body (announced, never
    // sent) is not waited for.
    let refused = tokio::time::timeout(Duration::from_secs(5), async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        socket
            .write_all(b"POST /telegram HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000\r\n\r\n")
            .await
            .unwrap();
        let mut answer = [0u8; 12];
        socket.read_exact(&mut answer).await.unwrap();
        answer
    })
    .await
    .expect("answered without the body");
    assert_eq!(&refused, b"HTTP/1.1 401");

    let post_with_the_secret = || async {
        client
            .post(&url)
            .header("X-Telegram-Bot-Api-Secret-Token", secret)
            .json(&update)
            .send()
            .await
            .unwrap()
    };
    let response = post_with_the_secret().await;
    assert_eq!(response.status(), 200);
    let message = bot.next_inbound().await;
    assert_eq!(message.umo().to_string(), "tg:GroupMessage:-100777");
    assert!(message.mentions_bot());
    assert_eq!(message.plain_text(), "hi");

    // Telegram sends an update again when it thinks the first try failed;
    // it is taken once.
    let again = post_with_the_secret().await;
    assert_eq!(again.status(), 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(bot.inbound.try_recv().is_err(), "the repeat was handed on");
    bot.stop().await;
}

#[tokio::test]
async fn edits_are_spaced_and_unchanged_text_is_fine() {
    let fake = FakeTelegram::start(TOKEN).await;
    let adapter = TelegramAdapter::new("tg", config(&fake, TOKEN)).unwrap();
    let group = SessionTarget::new(MessageType::Group, "-100777");
    let message_id = adapter.send_text(&group, "thinking…").await.unwrap();
    let started = Instant::now();
    adapter
        .edit_text("-100777", &message_id, "the answer is")
        .await
        .unwrap();
    adapter
        .edit_text("-100777", &message_id, "the answer is 42")
        .await
        .unwrap();
    assert!(started.elapsed() >= Duration::from_millis(900));
    let edits = fake.calls("editMessageText");
    assert_eq!(edits.len(), 2);
    assert_eq!(
        edits[1],
        json!({"chat_id": -100777, "message_id": message_id.parse::<i64>().unwrap(), "text": "the answer is 42"})
    );
    fake.fail(
        "editMessageText",
        400,
        "Bad Request: message is not modified: specified new message content and reply markup are exactly the same",
    );
    adapter
        .edit_text("-100777", &message_id, "the answer is 42")
        .await
        .unwrap();
}

/// What each sent message shows in the end, in the order sent: its last
/// edit's text, or the text it was sent with.
fn final_texts(fake: &FakeTelegram) -> Vec<String> {
    let edits = fake.calls("editMessageText");
    let sent = fake.calls("sendMessage");
    sent.iter()
        .enumerate()
        .map(|(index, sent)| {
            // The fake numbers the messages it sends from 1000.
            let id = 1000 + index as i64;
            let last = edits.iter().rev().find(|edit| edit["message_id"] == id);
            last.unwrap_or(sent)["text"].as_str().unwrap().to_owned()
        })
        .collect()
}

/// Streams `pieces` to the adapter as one answer, to its end.
async fn stream(adapter: &TelegramAdapter, target: &SessionTarget, pieces: &[&str]) {
    let (deltas, receiver) = mpsc::channel(pieces.len().max(1));
    for piece in pieces {
        deltas.send((*piece).to_owned()).await.unwrap();
    }
    drop(deltas);
    adapter.send_streaming(target, receiver).await.unwrap();
}

#[tokio::test]
async fn a_streamed_answer_over_the_limit_in_utf16_units_arrives_whole() {
    let fake = FakeTelegram::start(TOKEN).await;
    let adapter = TelegramAdapter::new("tg", config(&fake, TOKEN)).unwrap();
    let group = SessionTarget::new(MessageType::Group, "-100777");
    // Under 4096 characters, over 4096 UTF-16 units: an emoji counts twice.
    let answer = format!("{} {} END", "A".repeat(3900), "😀".repeat(150));
    assert!(answer.chars().count() <= MAX_TEXT && answer.encode_utf16().count() > MAX_TEXT);

    stream(&adapter, &group, &[&answer[..3900], &answer[3900..]]).await;

    let shown = final_texts(&fake);
    assert_eq!(shown.len(), 2, "the rest goes on in a second message");
    assert_eq!(shown.concat(), answer);
    for text in &shown {
        assert!(text.encode_utf16().count() <= MAX_TEXT, "{text}");
    }
    for edit in fake.calls("editMessageText") {
        assert_eq!(edit["message_id"], 1000, "only the first is edited");
    }
}

#[tokio::test]
async fn a_streamed_answer_that_starts_over_the_limit_goes_on_in_its_last_message() {
    let fake = FakeTelegram::start(TOKEN).await;
    let adapter = TelegramAdapter::new("tg", config(&fake, TOKEN)).unwrap();
    let group = SessionTarget::new(MessageType::Group, "-100777");
    let first = "x".repeat(MAX_TEXT + 904);

    stream(&adapter, &group, &[&first, " and more"]).await;

    let shown = final_texts(&fake);
    assert_eq!(shown.len(), 2, "{shown:?}");
    assert_eq!(shown.concat(), format!("{first} and more"));
    assert_eq!(shown[0].len(), MAX_TEXT);
    for edit in fake.calls("editMessageText") {
        assert_eq!(edit["message_id"], 1001, "the full first message stays");
    }
}

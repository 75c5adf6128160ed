//! `POST /api/v1/chat`: the SSE catalogue and order, session handling,
//! provider selection, history, attachments, failures and disconnects.

use std::time::{Duration, Instant};

use astrbot_core::Store;
use astrbot_store::SqliteStore;
use fake_openai::Behaviour;
use futures::StreamExt;
use serde_json::{json, Value};

use crate::helpers::*;

async fn store_of(app: &TestApp) -> SqliteStore {
    SqliteStore::open(&app.data_dir().join("astrbot-rs.db"))
        .await
        .unwrap()
}

#[tokio::test]
async fn streaming_chat_emits_astrbot_events_in_order() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;

    let stream = app
        .chat(
            &key,
            json!({"message": "hello there", "username": "alice", "session_id": "s-stream"}),
        )
        .await;

    assert_eq!(stream.status, 200);
    assert!(stream.content_type.starts_with("text/event-stream"));
    assert_eq!(
        stream.events[0],
        json!({"type": "session_id", "data": null, "session_id": "s-stream"})
    );
    let types = stream.types();
    let deltas = types.iter().filter(|t| *t == "plain").count();
    assert!(deltas >= 2, "expected several deltas, got {types:?}");
    assert_eq!(
        &types[1 + deltas..],
        ["agent_stats", "complete", "message_saved", "end"]
    );
    for delta in &stream.events[1..=deltas] {
        assert_eq!(delta["streaming"], true);
        assert!(delta["chain_type"].is_null());
        assert!(delta["message_id"].is_string());
    }
    assert_eq!(stream.text(), "Echo: hello there");
    let complete = stream.first_of("complete").unwrap();
    assert_eq!(complete["data"], "Echo: hello there");
    assert_eq!(complete["reasoning"], "");
    let stats = &stream.first_of("agent_stats").unwrap()["data"];
    assert!(stats["token_usage"]["output"].as_u64().unwrap() > 0);
    assert!(stats["token_usage"]["input_other"].as_u64().unwrap() > 0);
    assert!(stats["end_time"].as_f64().unwrap() >= stats["start_time"].as_f64().unwrap());
    let saved = &stream.first_of("message_saved").unwrap()["data"];
    assert!(saved["id"].is_i64());
    assert!(saved["created_at"].as_str().unwrap().ends_with("+00:00"));
    let end = stream.events.last().unwrap();
    assert_eq!(end["data"], "");
    assert_eq!(end["streaming"], false);
    assert_eq!(end["message_id"], complete["message_id"]);
}

#[tokio::test]
async fn sse_payloads_use_python_json_separators() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;

    let stream = app
        .chat(
            &key,
            json!({"message": "你好", "username": "alice", "session_id": "s-fmt"}),
        )
        .await;

    assert!(
        stream.raw.starts_with(
            "data: {\"type\": \"session_id\", \"data\": null, \"session_id\": \"s-fmt\"}\n\n"
        ),
        "{}",
        stream.raw
    );
    assert!(stream.raw.contains("Echo: 你好"), "raw UTF-8 in SSE");
}

#[tokio::test]
async fn non_streaming_chat_saves_before_stats() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;

    let stream = app
        .chat(
            &key,
            json!({"message": "one shot", "username": "alice", "enable_streaming": false}),
        )
        .await;

    assert_eq!(
        stream.types(),
        ["session_id", "plain", "message_saved", "agent_stats", "end"]
    );
    let plain = &stream.events[1];
    assert_eq!(plain["data"], "Echo: one shot");
    assert_eq!(plain["streaming"], false);
    let request = &app.chat_requests()[0];
    assert!(request["stream"].as_bool() != Some(true), "{request}");
}

#[tokio::test]
async fn null_streaming_flag_follows_the_config() {
    let app = spawn_app_with(Behaviour::default(), |config| {
        config["provider_settings"]["streaming_response"] = json!(true);
    })
    .await;
    let (key, _) = app.create_key(&["chat"]).await;

    let stream = app
        .chat(
            &key,
            json!({"message": "x", "username": "u", "enable_streaming": null}),
        )
        .await;

    assert!(
        stream.types().contains(&"complete".to_owned()),
        "{:?}",
        stream.types()
    );
}

#[tokio::test]
async fn a_session_is_created_for_the_user_when_none_is_given() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;

    let stream = app
        .chat(
            &key,
            json!({"message": "hi", "username": "carol", "enable_streaming": false}),
        )
        .await;

    let session_id = stream.events[0]["session_id"].as_str().unwrap().to_owned();
    assert!(uuid::Uuid::parse_str(&session_id).is_ok());
    let (_, listed) = app
        .get("/api/v1/chat/sessions?username=carol", Some(&key))
        .await;
    assert_eq!(listed["data"]["total"], 1);
    assert_eq!(
        listed["data"]["sessions"][0]["session_id"],
        session_id.as_str()
    );
    assert_eq!(listed["data"]["sessions"][0]["platform_id"], "webchat");
}

#[tokio::test]
async fn session_ids_are_trimmed_everywhere() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;

    let stream = app
        .chat(
            &key,
            json!({"message": "hi", "username": "dave", "session_id": "  padded  "}),
        )
        .await;

    assert_eq!(stream.events[0]["session_id"], "padded");
    let store = store_of(&app).await;
    assert_eq!(
        store.list_history("webchat", "padded").await.unwrap().len(),
        2
    );
}

#[tokio::test]
async fn another_users_session_is_refused() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    app.chat(
        &key,
        json!({"message": "mine", "username": "bob", "session_id": "bobs"}),
    )
    .await;

    let stream = app
        .chat(
            &key,
            json!({"message": "hijack", "username": "alice", "session_id": "bobs"}),
        )
        .await;

    assert!(stream.content_type.starts_with("application/json"));
    assert_eq!(
        stream.events[0],
        json!({"status": "error", "message": "session_id belongs to another username", "data": null})
    );
}

#[tokio::test]
async fn message_validation_answers_astrbot_errors() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let cases = [
        (json!({"username": "u"}), "Missing key: message or files"),
        (
            json!({"username": "u", "message": ""}),
            "Message are both empty",
        ),
        (
            json!({"username": "u", "message": null}),
            "Message are both empty",
        ),
        (
            json!({"username": "u", "message": [{"type": "reply", "message_id": 1}]}),
            "Message content is empty (reply only is not allowed)",
        ),
        (json!({"message": "x"}), "Missing key: username"),
        (
            json!({"message": "x", "username": "  "}),
            "username is empty",
        ),
    ];

    for (body, expected) in cases {
        let answer = app.chat(&key, body.clone()).await;
        assert_eq!(answer.events[0]["status"], "error", "{body}");
        assert_eq!(answer.events[0]["message"], expected, "{body}");
    }
}

#[tokio::test]
async fn a_bang_in_a_user_name_cannot_reach_another_users_conversation() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let first = json!({"username": "a", "session_id": "b!c", "message": "my secret"});
    assert_eq!(app.chat(&key, first).await.text(), "Echo: my secret");

    // Both would be `webchat!a!b!c`: one conversation for two users.
    let other = json!({"username": "a!b", "session_id": "c", "message": "what did I say?"});
    let refused = app.chat(&key, other).await;

    assert_eq!(refused.events[0]["status"], "error");
    assert_eq!(
        refused.events[0]["message"],
        "username must not contain '!'"
    );
    assert_eq!(app.chat_requests().len(), 1, "the model saw one turn");
}

#[tokio::test]
async fn built_in_commands_answer_without_the_model() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let body = |text: &str| json!({"message": text, "username": "u", "session_id": "cmd"});
    app.chat(&key, body("remember the blue door")).await;

    let reset = app.chat(&key, body("/reset")).await;
    let help = app.chat(&key, body("/help")).await;
    app.chat(&key, body("what did I say?")).await;

    assert_eq!(reset.text(), "The conversation was reset.");
    assert_eq!(
        reset.types(),
        ["session_id", "plain", "message_saved", "end"]
    );
    assert!(help.text().contains("/new"), "{}", help.text());
    let requests = app.chat_requests();
    assert_eq!(requests.len(), 2, "the commands did not reach the model");
    let spoken: Vec<&Value> = requests[1]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|message| message["role"] != "system")
        .collect();
    assert_eq!(
        spoken,
        [&json!({"role": "user", "content": "what did I say?"})]
    );
    let history = store_of(&app)
        .await
        .list_history("webchat", "cmd")
        .await
        .unwrap();
    assert_eq!(
        history.len(),
        8,
        "commands and their replies are in the history"
    );
}

#[tokio::test]
async fn without_a_provider_the_stream_is_session_id_then_end() {
    let app = spawn_app_with(Behaviour::default(), |config| {
        config["provider"] = json!([]);
        config["provider_sources"] = json!([]);
        config["provider_settings"]["default_provider_id"] = json!("");
    })
    .await;
    let (key, _) = app.create_key(&["chat"]).await;

    let stream = app
        .chat(&key, json!({"message": "anyone?", "username": "u"}))
        .await;

    assert_eq!(stream.types(), ["session_id", "end"]);
    assert!(app.fake.requests().is_empty());
}

#[tokio::test]
async fn unknown_selected_provider_gets_no_answer() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;

    let stream = app
        .chat(
            &key,
            json!({"message": "x", "username": "u", "selected_provider": "openai_chat_completion"}),
        )
        .await;

    assert_eq!(stream.types(), ["session_id", "end"]);
    assert!(app.fake.requests().is_empty());
}

#[tokio::test]
async fn an_unreadable_provider_choice_is_ignored_and_the_turn_answered() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let body = |text: &str| json!({"message": text, "username": "u", "session_id": "damaged"});
    assert_eq!(app.chat(&key, body("first")).await.text(), "Echo: first");

    // Another tool stored the session's provider choice without AstrBot's
    // `{"val": ...}` wrapper.
    let database = rusqlite::Connection::open(app.data_dir().join("astrbot-rs.db")).unwrap();
    database
        .execute(
            "INSERT INTO preferences (scope, scope_id, \"key\", value, created_at, updated_at) \
             VALUES ('umo', 'webchat:FriendMessage:webchat!u!damaged', \
             'provider_perf_chat_completion', '\"fake\"', '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
            [],
        )
        .unwrap();

    let stream = app.chat(&key, body("second")).await;

    assert_eq!(stream.text(), "Echo: second");
    let requests = app.chat_requests();
    let history = requests[1]["messages"].as_array().unwrap();
    assert!(
        history.iter().any(|m| m["content"] == "Echo: first"),
        "the conversation was still read: {history:?}"
    );
}

#[tokio::test]
async fn selected_provider_and_model_are_used() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;

    let stream = app
        .chat(
            &key,
            json!({"message": "x", "username": "u", "selected_provider": "fake",
                   "selected_model": "gpt-4.1-mini", "enable_streaming": false}),
        )
        .await;

    assert_eq!(stream.text(), "Echo: x");
    assert_eq!(app.chat_requests()[0]["model"], "gpt-4.1-mini");
}

#[tokio::test]
async fn the_second_turn_sends_the_first_as_history() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let body = |text: &str| json!({"message": text, "username": "u", "session_id": "hist"});

    app.chat(&key, body("first question")).await;
    app.chat(&key, body("second question")).await;

    let requests = app.chat_requests();
    assert_eq!(requests.len(), 2);
    let messages = requests[1]["messages"].as_array().unwrap();
    let texts: Vec<(&str, &str)> = messages
        .iter()
        .map(|m| {
            (
                m["role"].as_str().unwrap(),
                m["content"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(texts[0].0, "system");
    assert_eq!(
        &texts[1..],
        [
            ("user", "first question"),
            ("assistant", "Echo: first question"),
            ("user", "second question")
        ]
    );
}

/// A conversation as AstrBot stores it after a tool call, with a reasoning
/// part kept on the assistant's answer.
fn conversation_with_a_tool_call() -> Value {
    json!([
        {"role": "user", "content": "weather in Paris?"},
        {"role": "assistant", "content": null, "tool_calls": [{
            "id": "call_1", "type": "function",
            "function": {"name": "weather", "arguments": "{\"city\":\"Paris\"}"}
        }]},
        {"role": "tool", "tool_call_id": "call_1", "content": "sunny, 21 C"},
        {"role": "assistant", "content": [
            {"type": "think", "think": "and Lyon?", "encrypted": null}
        ], "tool_calls": [{
            "id": "call_2", "type": "function",
            "function": {"name": "weather", "arguments": "{\"city\":\"Lyon\"}"}
        }]},
        {"role": "tool", "tool_call_id": "call_2", "content": "rain, 12 C"},
        {"role": "assistant", "content": [
            {"type": "think", "think": "the tool said sunny", "encrypted": null},
            {"type": "text", "text": "It is sunny in Paris."}
        ]}
    ])
}

#[tokio::test]
async fn a_stored_tool_call_is_kept_and_sent_back_to_the_model() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let body = |text: &str| json!({"message": text, "username": "u", "session_id": "tools"});
    app.chat(&key, body("first")).await;

    // The same conversation, as AstrBot left it after using a tool.
    let database = rusqlite::Connection::open(app.data_dir().join("astrbot-rs.db")).unwrap();
    let stored = conversation_with_a_tool_call();
    database
        .execute("UPDATE conversations SET content = ?", [stored.to_string()])
        .unwrap();

    assert_eq!(
        app.chat(&key, body("and tomorrow?")).await.text(),
        "Echo: and tomorrow?"
    );

    // The model sees the whole exchange in OpenAI's shape: the calls, their
    // results, and the answer, without AstrBot's reasoning parts (a call
    // that had only reasoning beside it goes with `null` content).
    let requests = app.chat_requests();
    let sent = requests[1]["messages"].as_array().unwrap();
    assert_eq!(sent[0]["role"], "system");
    let mut second_call = stored[3].clone();
    second_call["content"] = Value::Null;
    assert_eq!(
        sent[1..],
        [
            stored[0].clone(),
            stored[1].clone(),
            stored[2].clone(),
            second_call,
            stored[4].clone(),
            json!({"role": "assistant", "content": [{"type": "text", "text": "It is sunny in Paris."}]}),
            json!({"role": "user", "content": "and tomorrow?"}),
        ]
    );

    // Nothing stored is lost: the old messages stay as they were, and the
    // new turn follows them.
    let content: String = database
        .query_row("SELECT content FROM conversations", [], |row| row.get(0))
        .unwrap();
    let content: Value = serde_json::from_str(&content).unwrap();
    let mut expected = stored.as_array().unwrap().clone();
    expected.push(json!({"role": "user", "content": "and tomorrow?"}));
    expected.push(json!({"role": "assistant", "content": "Echo: and tomorrow?"}));
    assert_eq!(content, Value::Array(expected));
}

#[tokio::test]
async fn a_stored_emoji_cut_in_half_does_not_block_the_session() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let body = |text: &str| json!({"message": text, "username": "u", "session_id": "cut"});
    app.chat(&key, body("first")).await;

    // Python's json module writes half a surrogate pair as it is; AstrBot
    // stores such text when a client cut an emoji in two.
    let database = rusqlite::Connection::open(app.data_dir().join("astrbot-rs.db")).unwrap();
    database
        .execute(
            r#"UPDATE conversations SET content = '[{"role": "user", "content": "smile \ud83d"}]'"#,
            [],
        )
        .unwrap();
    database
        .execute(
            r#"UPDATE platform_message_history SET content = '{"type": "user", "message": [{"type": "plain", "text": "smile \ud83d"}]}'"#,
            [],
        )
        .unwrap();

    assert_eq!(app.chat(&key, body("second")).await.text(), "Echo: second");

    let requests = app.chat_requests();
    let sent = requests[1]["messages"].as_array().unwrap();
    assert_eq!(
        sent[1],
        json!({"role": "user", "content": "smile \u{fffd}"})
    );
    let store = SqliteStore::open(&app.data_dir().join("astrbot-rs.db"))
        .await
        .unwrap();
    let turns = store.list_history("webchat", "cut").await.unwrap();
    assert_eq!(
        turns[0].content["message"][0]["text"], "smile \u{fffd}",
        "the history still lists"
    );
    // The stored message is saved back as Python wrote it.
    let content: String = database
        .query_row("SELECT content FROM conversations", [], |row| row.get(0))
        .unwrap();
    assert!(
        content.starts_with(r#"[{"role": "user", "content": "smile \ud83d"},"#),
        "{content}"
    );
}

#[tokio::test]
async fn a_conversation_that_cannot_be_started_is_reported_in_the_answer() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let body = |text: &str| json!({"message": text, "username": "u", "session_id": "blocked"});
    // A database that refuses new conversations, as a full disk or a
    // damaged table would: the turn cannot reach the model.
    let database = rusqlite::Connection::open(app.data_dir().join("astrbot-rs.db")).unwrap();
    database
        .execute_batch(
            "CREATE TRIGGER refuse BEFORE INSERT ON conversations \
             BEGIN SELECT RAISE(ABORT, 'refused'); END;",
        )
        .unwrap();

    let refused = app.chat(&key, body("first")).await;
    assert_eq!(
        refused.text(),
        "Error occurred while processing agent request: \
         the conversation could not be loaded; please try again."
    );
    assert_eq!(
        refused.types(),
        ["session_id", "plain", "message_saved", "end"]
    );
    assert!(app.chat_requests().is_empty(), "the model was not called");

    database.execute_batch("DROP TRIGGER refuse;").unwrap();
    assert_eq!(app.chat(&key, body("second")).await.text(), "Echo: second");

    let turns = store_of(&app)
        .await
        .list_history("webchat", "blocked")
        .await
        .unwrap();
    let texts: Vec<&str> = turns
        .iter()
        .map(|turn| turn.content["message"][0]["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts.len(), 4, "{texts:?}");
    assert!(texts.contains(&"first") && texts.contains(&"second"));
    assert!(texts.iter().any(|text| text.starts_with("Error occurred")));
    // The failed turn stays out of what the model sees next.
    let requests = app.chat_requests();
    let spoken: Vec<&Value> = requests[0]["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|message| message["role"] != "system")
        .collect();
    assert_eq!(spoken, [&json!({"role": "user", "content": "second"})]);
}

#[tokio::test]
async fn personas_stored_by_astrbot_are_chosen_as_astrbot_chooses_them() {
    let app = spawn_app_with(Behaviour::default(), |config| {
        config["provider_settings"]["default_personality"] = json!("pirate");
    })
    .await;
    let (key, _) = app.create_key(&["chat"]).await;
    // AstrBot 4 keeps personas in the database, made in its dashboard.
    let database = rusqlite::Connection::open(app.data_dir().join("astrbot-rs.db")).unwrap();
    for (id, prompt) in [("pirate", "Talk like a pirate."), ("owl", "Hoot.")] {
        database
            .execute(
                "INSERT INTO personas (persona_id, system_prompt, begin_dialogs, created_at, \
                 updated_at) VALUES (?, ?, '[\"Ahoy?\", \"Arr!\"]', '2026-01-01 00:00:00', \
                 '2026-01-01 00:00:00')",
                [id, prompt],
            )
            .unwrap();
    }
    let umo = "webchat:FriendMessage:webchat!u!p";
    let say = |text: &str| json!({"message": text, "username": "u", "session_id": "p"});
    let sent = |app: &TestApp| {
        let last = app.chat_requests().pop().unwrap();
        let messages = last["messages"].as_array().unwrap().clone();
        messages[..messages.len() - 1]
            .iter()
            .filter(|m| m["content"] == "Ahoy?" || m["content"] == "Arr!" || m["role"] == "system")
            .map(|m| m["content"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };

    // The config's default names a stored persona: its prompt, then its
    // opening dialogue.
    app.chat(&key, say("one")).await;
    assert_eq!(sent(&app), ["Talk like a pirate.", "Ahoy?", "Arr!"]);

    // A persona set on the conversation (AstrBot's /persona) wins.
    database
        .execute("UPDATE conversations SET persona_id = 'owl'", [])
        .unwrap();
    app.chat(&key, say("two")).await;
    assert_eq!(sent(&app)[0], "Hoot.");

    // The session's own setting wins over both; "[%None]" there means no
    // persona at all, not even the default prompt.
    database
        .execute(
            "INSERT INTO preferences (scope, scope_id, \"key\", value, created_at, updated_at) \
             VALUES ('umo', ?, 'session_service_config', '{\"val\": {\"persona_id\": \"[%None]\"}}', \
             '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
            [umo],
        )
        .unwrap();
    app.chat(&key, say("three")).await;
    let last = app.chat_requests().pop().unwrap();
    assert!(
        last["messages"]
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["role"] != "system"),
        "{last}"
    );
}

#[tokio::test]
async fn a_conversation_that_cannot_go_on_is_kept_and_a_new_one_started() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let database = rusqlite::Connection::open(app.data_dir().join("astrbot-rs.db")).unwrap();
    for (session, content) in [("object", r#"{"role": "user"}"#), ("broken", "[{not json")] {
        let body = |text: &str| json!({"message": text, "username": "u", "session_id": session});
        app.chat(&key, body("first")).await;
        database
            .execute(
                "UPDATE conversations SET content = ? WHERE user_id LIKE ?",
                [content, &format!("%!{session}")],
            )
            .unwrap();

        assert_eq!(
            app.chat(&key, body("second")).await.text(),
            "Echo: second",
            "{session}"
        );

        // The session answered in a new conversation; the old one is as it was.
        let contents: Vec<String> = database
            .prepare("SELECT content FROM conversations WHERE user_id LIKE ? ORDER BY created_at")
            .unwrap()
            .query_map([format!("%!{session}")], |row| row.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(contents.len(), 2, "{session}: {contents:?}");
        assert_eq!(contents[0], content);
        assert!(contents[1].contains("Echo: second"), "{contents:?}");
    }
}

#[tokio::test]
async fn persona_prefix_and_context_length_shape_the_prompt() {
    let app = spawn_app_with(Behaviour::default(), |config| {
        config["persona"] =
            json!([{"name": "pirate", "prompt": "Talk like a pirate.", "begin_dialogs": []}]);
        config["provider_settings"]["default_personality"] = json!("pirate");
        config["provider_settings"]["prompt_prefix"] = json!("Q: {{prompt}}");
        config["provider_settings"]["max_context_length"] = json!(1);
    })
    .await;
    let (key, _) = app.create_key(&["chat"]).await;
    for text in ["one", "two", "three"] {
        app.chat(
            &key,
            json!({"message": text, "username": "u", "session_id": "p"}),
        )
        .await;
    }

    let last = app.chat_requests().pop().unwrap();
    let messages = last["messages"].as_array().unwrap();

    assert_eq!(
        messages[0],
        json!({"role": "system", "content": "Talk like a pirate."})
    );
    assert_eq!(
        messages.len(),
        4,
        "system + one kept turn + new turn: {last}"
    );
    assert_eq!(messages[1]["content"], "Q: two");
    assert_eq!(messages[3]["content"], "Q: three");
}

// Two worker threads: the server's writer waits for the lock in place of
// one, and the other lets the rest of the messages reach the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_messages_racing_for_a_new_session_id() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let token = app.admin_token().await;
    let config = json!({"name": "ben's", "config": config_for(&app.fake)});
    let (_, created) = app
        .admin_post(&token, "/api/config/abconf/new", config)
        .await;
    let bens_config = created["data"]["conf_id"].as_str().unwrap().to_owned();
    // A first use, so that the key's `last_used_at` write is not due again.
    let warm_up = json!({"message": "hi", "username": "ann", "session_id": "warm-up"});
    assert_eq!(app.chat(&key, warm_up).await.text(), "Echo: hi");
    // Another tool holds the write lock, so that every first message finds
    // no session and then waits to create it: they all race, Ann's first.
    let database = rusqlite::Connection::open(app.data_dir().join("astrbot-rs.db")).unwrap();
    database.execute_batch("BEGIN IMMEDIATE").unwrap();

    let send = |user: &'static str, i: usize, delay: u64| {
        let (app, key) = (&app, key.clone());
        let mut body =
            json!({"message": format!("{user} {i}"), "username": user, "session_id": "raced"});
        if user == "ben" {
            body["config_id"] = json!(bens_config);
        }
        async move {
            tokio::time::sleep(Duration::from_millis(delay)).await;
            (user, app.chat(&key, body).await)
        }
    };
    let anns = (0..4).map(|i| send("ann", i, 0));
    let bens = (0..4).map(|i| send("ben", i, 100));
    let release = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        database.execute_batch("COMMIT").unwrap();
    });
    let results = futures::future::join_all(anns.chain(bens)).await;
    release.join().unwrap();

    // Ann's session was stored first: all her messages are answered and
    // stored; all of Ben's are refused, and his config binding for a
    // session he does not own was never written.
    for (user, stream) in &results {
        if *user == "ann" {
            assert_eq!(stream.types().last().unwrap(), "end", "{user}");
        } else {
            let refusal = &stream.events[0]["message"];
            assert_eq!(refusal, "session_id belongs to another username");
        }
    }
    let store = store_of(&app).await;
    let history = store.list_history("webchat", "raced").await.unwrap();
    let senders = history.iter().filter_map(|turn| turn.sender_id.as_deref());
    let users: Vec<_> = senders.filter(|sender| *sender != "bot").collect();
    assert_eq!(users, ["ann"; 4]);
    let routes = store
        .get_preference("global", "global", "umop_config_routing")
        .await
        .unwrap();
    let routes = routes.unwrap_or_else(|| json!({})).to_string();
    assert!(!routes.contains("ben"), "{routes}");
}

#[tokio::test]
async fn concurrent_sessions_never_cross_talk() {
    let app = spawn_app_with(
        Behaviour {
            token_delay: Duration::from_millis(5),
            ..Default::default()
        },
        |_| {},
    )
    .await;
    let (key, _) = app.create_key(&["chat"]).await;

    let chats = (0..8).map(|i| {
        let app = &app;
        let key = key.clone();
        async move {
            let text = format!("message number {i} from session {i}");
            let body = json!({"message": text, "username": format!("user{i}"), "session_id": format!("par-{i}")});
            (text, app.chat(&key, body).await)
        }
    });
    let results = futures::future::join_all(chats).await;

    for (text, stream) in results {
        assert_eq!(stream.text(), format!("Echo: {text}"));
        assert_eq!(stream.types().last().unwrap(), "end");
    }
}

#[tokio::test]
async fn messages_to_one_session_take_turns() {
    let app = spawn_app_with(
        Behaviour {
            token_delay: Duration::from_millis(30),
            ..Default::default()
        },
        |_| {},
    )
    .await;
    let (key, _) = app.create_key(&["chat"]).await;
    let body = |text: &str| json!({"message": text, "username": "u", "session_id": "busy"});

    let (first, second) = tokio::join!(app.chat(&key, body("alpha beta gamma")), async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        app.chat(&key, body("delta")).await
    });

    assert_eq!(first.text(), "Echo: alpha beta gamma");
    assert_eq!(second.text(), "Echo: delta");
    let requests = app.chat_requests();
    let later = requests
        .iter()
        .find(|r| r.to_string().contains("\"delta\""))
        .unwrap();
    assert!(
        later.to_string().contains("Echo: alpha beta gamma"),
        "the second turn saw the first one's answer: {later}"
    );
}

/// Messages sent at once to one session are answered in the order their
/// user turns were stored, so the history never shows an answer before the
/// answer to an earlier message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn turns_sent_at_once_are_answered_in_the_order_they_were_stored() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let send = |session: usize, i: usize| {
        let (app, key) = (&app, key.clone());
        let body = json!({"message": format!("m{i}"), "username": "u", "session_id": format!("s{session}")});
        async move { app.chat(&key, body).await }
    };
    let chats = (0..10).flat_map(|session| (0..5).map(move |i| (session, i)));
    let streams = futures::future::join_all(chats.map(|(session, i)| send(session, i))).await;
    assert!(streams
        .iter()
        .all(|stream| stream.text().starts_with("Echo: m")));

    let store = store_of(&app).await;
    for session in 0..10 {
        let history = store
            .list_history("webchat", &format!("s{session}"))
            .await
            .unwrap();
        // "m3" in a user turn, "Echo: m3" in its answer.
        let message_of = |turn: &astrbot_core::store::HistoryRecord| {
            let content = turn.content.to_string();
            (0..5).find(|i| content.contains(&format!("m{i}\"")))
        };
        let (bots, users): (Vec<_>, Vec<_>) = history
            .iter()
            .partition(|turn| turn.sender_id.as_deref() == Some("bot"));
        let asked: Vec<_> = users.into_iter().map(message_of).collect();
        let answered: Vec<_> = bots.into_iter().map(message_of).collect();
        assert_eq!(asked.len(), 5);
        assert_eq!(answered, asked, "session s{session}");
    }
}

#[tokio::test]
async fn a_client_that_disconnects_still_gets_its_turn_saved() {
    let app = spawn_app_with(
        Behaviour {
            text: Some("one two three four five six seven eight".into()),
            token_delay: Duration::from_millis(60),
            ..Default::default()
        },
        |_| {},
    )
    .await;
    let (key, _) = app.create_key(&["chat"]).await;

    let response = app
        .client
        .post(app.url("/api/v1/chat"))
        .header("X-API-Key", &key)
        .json(&json!({"message": "go", "username": "u", "session_id": "gone"}))
        .send()
        .await
        .unwrap();
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("\"plain\"") {
        seen.push_str(&String::from_utf8_lossy(
            &body.next().await.unwrap().unwrap(),
        ));
    }
    drop(body);

    let store = store_of(&app).await;
    app.eventually("the bot turn is saved", || async {
        let turns = store.list_history("webchat", "gone").await.unwrap();
        turns.len() == 2
            && turns[1].content["message"][0]["text"] == "one two three four five six seven eight"
    })
    .await;
}

/// A client that sends its message and hangs up at once, before the answer
/// starts, still has its turn answered and saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_hangs_up_right_after_sending_still_gets_its_turn_saved() {
    use tokio::io::AsyncWriteExt;

    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    for n in 0..10 {
        let body = json!({"message": format!("m{n}"), "username": "u", "session_id": format!("hung-up-{n}")});
        let body = body.to_string();
        let request = format!(
            "POST /api/v1/chat HTTP/1.1\r\nHost: x\r\nX-API-Key: {key}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let mut socket = app.connect().await;
        socket.write_all(request.as_bytes()).await.unwrap();
        drop(socket);
    }

    let store = store_of(&app).await;
    for n in 0..10 {
        let session = format!("hung-up-{n}");
        app.eventually("the turn is answered and saved", || async {
            let turns = store.list_history("webchat", &session).await.unwrap();
            turns.len() == 2 && turns[1].content["message"][0]["text"] == format!("Echo: m{n}")
        })
        .await;
    }
}

#[tokio::test]
async fn provider_errors_end_the_stream_with_their_text() {
    let app = spawn_app_with(
        Behaviour {
            fail_status: Some(500),
            ..Default::default()
        },
        |_| {},
    )
    .await;
    let (key, _) = app.create_key(&["chat"]).await;

    for streaming in [true, false] {
        let stream = app
            .chat(
                &key,
                json!({"message": "x", "username": "u", "enable_streaming": streaming}),
            )
            .await;

        assert_eq!(stream.types().last().unwrap(), "end");
        let text = stream.text();
        assert!(text.contains("LLM 响应错误"), "{text}");
        assert!(text.contains("500"), "{text}");
    }
}

#[tokio::test]
async fn a_hanging_provider_times_out_instead_of_hanging_the_stream() {
    let app = spawn_app_with(
        Behaviour {
            hang_before_answer: true,
            ..Default::default()
        },
        |config| config["provider_sources"][0]["timeout"] = json!(1),
    )
    .await;
    let (key, _) = app.create_key(&["chat"]).await;
    let started = Instant::now();

    let stream = app
        .chat(&key, json!({"message": "x", "username": "u"}))
        .await;

    assert!(started.elapsed() < Duration::from_secs(20));
    assert_eq!(stream.types().last().unwrap(), "end");
    assert!(stream.text().contains("LLM 响应错误"), "{}", stream.text());
}

#[tokio::test]
async fn an_answer_without_text_is_reported_not_shown_empty() {
    // A content filter's stop: a 200 whose answer holds no text, here
    // after some reasoning.
    let app = spawn_app_with(
        Behaviour {
            text: Some(String::new()),
            reasoning: Some("thinking hard".into()),
            ..Default::default()
        },
        |_| {},
    )
    .await;
    let (key, _) = app.create_key(&["chat"]).await;

    for streaming in [true, false] {
        let session = format!("empty-{streaming}");
        let body = json!({"message": "x", "username": "u", "session_id": session,
                          "enable_streaming": streaming});
        let answer = app.chat(&key, body).await;

        assert_eq!(
            answer.text(),
            "LLM 响应错误: the provider's answer held no text",
            "streaming {streaming}"
        );
        assert_eq!(answer.types().last().unwrap(), "end");
    }
    let store = store_of(&app).await;
    for session in ["empty-true", "empty-false"] {
        let history = store.list_history("webchat", session).await.unwrap();
        let bot = &history.last().unwrap().content;
        assert_eq!(
            bot["reasoning"], "thinking hard",
            "what came is kept: {bot}"
        );
    }
    // Kept out of what the model sees next, as any failed answer.
    let umo = "webchat:FriendMessage:webchat!u!empty-true";
    let conversation = store
        .get_preference("umo", umo, "sel_conv_id")
        .await
        .unwrap();
    let id = conversation.unwrap();
    let stored = store
        .get_conversation(id.as_str().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.content.messages().map(<[_]>::len),
        Some(0),
        "{stored:?}"
    );
}

#[tokio::test]
async fn silence_is_filled_with_keep_alive_comments() {
    let app = spawn_app_with(
        Behaviour {
            first_token_delay: Duration::from_secs(16),
            ..Default::default()
        },
        |config| config["provider_sources"][0]["timeout"] = json!(30),
    )
    .await;
    let (key, _) = app.create_key(&["chat"]).await;

    let stream = app
        .chat(&key, json!({"message": "slow", "username": "u"}))
        .await;

    assert!(
        stream.raw.lines().any(|line| line.starts_with(':')),
        "no keep-alive comment in {}",
        stream.raw
    );
    assert_eq!(stream.text(), "Echo: slow");
}

#[tokio::test]
async fn the_first_turn_gets_a_title_from_the_provider() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;

    app.chat(
        &key,
        json!({"message": "plan a trip", "username": "tina", "session_id": "t1"}),
    )
    .await;

    app.eventually("the session has a title", || async {
        let (_, listed) = app
            .get("/api/v1/chat/sessions?username=tina", Some(&key))
            .await;
        listed["data"]["sessions"][0]["display_name"] == "Echo: plan a trip"
    })
    .await;
}

#[tokio::test]
async fn images_reach_the_model_and_files_become_notes() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat", "file"]).await;
    let png = vec![0x89, b'P', b'N', b'G', 1, 2, 3];
    let image = app.upload(&key, "cat.png", "image/png", png).await;
    let doc = app
        .upload(&key, "notes.txt", "text/plain", b"hi".to_vec())
        .await;

    let stream = app
        .chat(
            &key,
            json!({"username": "u", "message": [
                {"type": "plain", "text": "what is this"},
                {"type": "image", "attachment_id": image["data"]["attachment_id"]},
                {"type": "file", "attachment_id": doc["data"]["attachment_id"]},
                {"type": "file", "attachment_id": "no-such-attachment"}
            ]}),
        )
        .await;

    assert_eq!(stream.types().last().unwrap(), "end");
    let request = &app.chat_requests()[0];
    let user = request["messages"].as_array().unwrap().last().unwrap();
    let parts = user["content"].as_array().expect("multi-part user content");
    let text = parts[0]["text"].as_str().unwrap();
    assert!(text.starts_with("what is this"), "{text}");
    assert!(text.contains("notes.txt"), "{text}");
    assert_eq!(parts[1]["type"], "image_url");
    let url = parts[1]["image_url"]["url"].as_str().unwrap();
    assert!(url.starts_with("data:image/png;base64,"), "{url}");

    // A picture alone comes with AstrBot's stand-in text, not an empty one.
    let alone = json!({"username": "u", "message": [
        {"type": "image", "attachment_id": image["data"]["attachment_id"]}
    ]});
    app.chat(&key, alone).await;
    let request = &app.chat_requests()[1];
    let user = request["messages"].as_array().unwrap().last().unwrap();
    assert_eq!(
        user["content"][0],
        json!({"type": "text", "text": "[图片]"})
    );
}

#[tokio::test]
async fn replies_quote_the_saved_turn() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let first = app
        .chat(
            &key,
            json!({"message": "remember me", "username": "u", "session_id": "r"}),
        )
        .await;
    let saved_id = first.first_of("message_saved").unwrap()["data"]["id"].clone();
    // Sends a reply to the saved turn and returns the prompt the model got.
    let reply = |username: &'static str, session: &'static str, text: &'static str| {
        let body = json!({"username": username, "session_id": session, "message": [
            {"type": "reply", "message_id": saved_id},
            {"type": "plain", "text": text}
        ]});
        let (app, key) = (&app, &key);
        async move {
            app.chat(key, body).await;
            let last = app.chat_requests().pop().unwrap();
            last["messages"].as_array().unwrap().last().unwrap()["content"].clone()
        }
    };

    let prompt = reply("u", "r", "what did you say?").await;
    let prompt = prompt.as_str().unwrap();
    assert!(prompt.contains("Echo: remember me"), "{prompt}");
    assert!(prompt.contains("what did you say?"), "{prompt}");

    // Another user's session cannot quote it: history ids are shared.
    let prompt = reply("eve", "e", "what did they say?").await;
    assert_eq!(prompt, "what did they say?");
}

#[tokio::test]
async fn user_and_bot_turns_are_stored_in_the_ui_history() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;

    app.chat(
        &key,
        json!({"message": "store me", "username": "ed", "session_id": "h"}),
    )
    .await;

    let store = store_of(&app).await;
    let turns = store.list_history("webchat", "h").await.unwrap();
    assert_eq!(turns.len(), 2);
    assert_eq!(
        turns[0].content,
        json!({"type": "user", "message": [{"type": "plain", "text": "store me"}]})
    );
    assert_eq!(turns[0].sender_id.as_deref(), Some("ed"));
    assert_eq!(turns[1].content["type"], "bot");
    assert_eq!(turns[1].content["message"][0]["text"], "Echo: store me");
    assert!(turns[1].content["agent_stats"].is_object());
    assert_eq!(turns[1].sender_id.as_deref(), Some("bot"));
    let _: Value = turns[1].content.clone();
}

#[tokio::test]
async fn a_config_without_providers_of_its_own_uses_the_default_configs() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let token = app.admin_token().await;
    // As AstrBot's dashboard makes one: a name, AstrBot's defaults, no providers.
    let (_, created) = app
        .admin_post(&token, "/api/config/abconf/new", json!({"name": "bare"}))
        .await;
    let bare = created["data"]["conf_id"].as_str().unwrap().to_owned();

    let answer = app
        .chat(
            &key,
            json!({"username": "kim", "session_id": "c1", "message": "hello", "config_id": bare}),
        )
        .await;

    assert_eq!(answer.text(), "Echo: hello");
    // A session id may hold `:`; the session is bound all the same.
    let colons =
        json!({"username": "kim", "session_id": "a:b", "message": "hi", "config_id": bare});
    assert_eq!(app.chat(&key, colons).await.text(), "Echo: hi");
    let listed = format!("/api/config/providers?config_id={bare}");
    let (_, providers) = app.admin_get(&token, &listed).await;
    let ids: Vec<&Value> = providers["data"]["providers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|provider| &provider["id"])
        .collect();
    assert_eq!(ids, [&json!("fake")], "{providers}");
}

#[tokio::test]
async fn a_wildcard_user_name_binds_only_its_own_session() {
    let second = fake_openai::FakeOpenAi::start(Behaviour {
        text: Some("from the other config".into()),
        ..Default::default()
    })
    .await;
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let token = app.admin_token().await;
    let (_, created) = app
        .admin_post(
            &token,
            "/api/config/abconf/new",
            json!({"name": "other", "config": config_for(&second)}),
        )
        .await;
    let other = created["data"]["conf_id"].as_str().unwrap().to_owned();

    let hostile = app
        .chat(
            &key,
            json!({"username": "*", "session_id": "*", "message": "bind", "config_id": other,
                   "enable_streaming": false}),
        )
        .await;
    let victim = app
        .chat(
            &key,
            json!({"username": "bob", "session_id": "bob-1", "message": "hi", "enable_streaming": false}),
        )
        .await;
    let starry = app
        .chat(
            &key,
            json!({"username": "************Z", "session_id": "q", "message": "x",
                   "config_id": other, "enable_streaming": false}),
        )
        .await;

    assert_eq!(hostile.text(), "from the other config");
    assert_eq!(
        victim.text(),
        "Echo: hi",
        "another user's session kept its config"
    );
    assert_eq!(starry.types().last().unwrap(), "end");
}

#[tokio::test]
async fn chats_share_one_http2_connection_when_the_client_speaks_it() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();

    let chats = (0..3).map(|n| {
        let request = client
            .post(app.url("/api/v1/chat"))
            .header("X-API-Key", &key)
            .json(&json!({"message": format!("over h2 {n}"), "username": "h2"}))
            .send();
        async move {
            let response = request.await.unwrap();
            assert_eq!(response.version(), reqwest::Version::HTTP_2);
            read_stream(response).await
        }
    });
    let answers = futures::future::join_all(chats).await;

    for (n, answer) in answers.iter().enumerate() {
        assert_eq!(answer.status, 200);
        assert!(answer.content_type.starts_with("text/event-stream"));
        assert_eq!(answer.text(), format!("Echo: over h2 {n}"));
        assert_eq!(answer.types().last().unwrap(), "end");
    }
}

//! §5.4, §7.1 and §7.2: `GET /api/v1/chat/sessions`, paging, clamping,
//! filters and the session objects.

use astrbot_core::Store;
use astrbot_store::SqliteStore;
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Opens a session for `username` by chatting with it.
async fn chat_in(app: &TestApp, key: &str, username: &str, session_id: &str) {
    let stream = app
        .chat(
            key,
            json!({"message": "hi", "username": username, "session_id": session_id, "enable_streaming": false}),
        )
        .await;
    assert_eq!(stream.status, StatusCode::OK);
    assert_eq!(
        stream.types().first().map(String::as_str),
        Some("session_id"),
        "{}",
        stream.raw
    );
}

async fn store(app: &TestApp) -> SqliteStore {
    SqliteStore::open(&app.data_dir().join("astrbot-rs.db"))
        .await
        .unwrap()
}

async fn sessions(app: &TestApp, key: &str, query: &str) -> Value {
    let (status, body) = app
        .get(&format!("/api/v1/chat/sessions?{query}"), Some(key))
        .await;
    assert_eq!(status, StatusCode::OK, "{query}: {body}");
    body
}

fn ids(body: &Value) -> Vec<String> {
    body["data"]["sessions"]
        .as_array()
        .unwrap_or_else(|| panic!("sessions is a list: {body}"))
        .iter()
        .map(|s| s["session_id"].as_str().unwrap().to_owned())
        .collect()
}

fn error(message: &str) -> Value {
    json!({"status": "error", "message": message, "data": null})
}

#[tokio::test]
async fn sessions_are_paginated_with_the_total_of_the_whole_set() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let alice = unique("alice");
    let bob = unique("bob");
    for index in 0..3 {
        chat_in(
            &app,
            &key,
            &alice,
            &unique(&format!("open_api_paginated_{index}")),
        )
        .await;
    }
    chat_in(&app, &key, &bob, &unique("bob-session")).await;

    let first = sessions(&app, &key, &format!("page=1&page_size=2&username={alice}")).await;
    let second = sessions(&app, &key, &format!("page=2&page_size=2&username={alice}")).await;
    let third = sessions(&app, &key, &format!("page=3&page_size=2&username={alice}")).await;

    assert_eq!(first["status"], "ok", "{first}");
    assert_eq!(first["data"]["page"], 1);
    assert_eq!(first["data"]["page_size"], 2);
    assert_eq!(first["data"]["total"], 3);
    assert_eq!(ids(&first).len(), 2);
    for session in first["data"]["sessions"].as_array().unwrap() {
        assert_eq!(session["creator"], alice.as_str());
    }
    assert_eq!(second["data"]["page"], 2);
    assert_eq!(second["data"]["total"], 3);
    assert_eq!(ids(&second).len(), 1);
    let mut all = ids(&first);
    all.extend(ids(&second));
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 3, "the two pages do not overlap");
    assert_eq!(ids(&third).len(), 0);
    assert_eq!(third["data"]["total"], 3);
}

#[tokio::test]
async fn page_and_page_size_default_to_1_and_20() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let user = unique("user");
    chat_in(&app, &key, &user, &unique("s")).await;

    let body = sessions(&app, &key, &format!("username={user}")).await;

    assert_eq!(body["status"], "ok", "{body}");
    let keys: Vec<&String> = body["data"].as_object().unwrap().keys().collect();
    assert_eq!(keys, ["sessions", "page", "page_size", "total"]);
    assert_eq!(body["data"]["page"], 1);
    assert_eq!(body["data"]["page_size"], 20);
    assert_eq!(body["data"]["total"], 1);
}

#[tokio::test]
async fn a_parameter_given_twice_is_read_as_its_first_value() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    chat_in(&app, &key, "alice", "alice-1").await;
    chat_in(&app, &key, "bob", "bob-1").await;

    // As Werkzeug's `request.args.get` reads it; `+` is a space.
    let body = sessions(&app, &key, "username=alice&username=bob&page=1&page=2").await;
    let spaced = sessions(&app, &key, "username=+alice+").await;

    assert_eq!(ids(&body), ["alice-1"], "{body}");
    assert_eq!(body["data"]["page"], 1);
    assert_eq!(ids(&spaced), ["alice-1"], "{spaced}");
}

#[tokio::test]
async fn page_and_page_size_are_clamped_and_the_clamped_values_echoed() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let user = unique("user");
    chat_in(&app, &key, &user, &unique("s1")).await;
    chat_in(&app, &key, &user, &unique("s2")).await;

    let zeros = sessions(&app, &key, &format!("page=0&page_size=0&username={user}")).await;
    let negative = sessions(&app, &key, &format!("page=-5&page_size=-3&username={user}")).await;
    let huge = sessions(&app, &key, &format!("page_size=1000&username={user}")).await;
    let far = sessions(&app, &key, &format!("page=5000000000&username={user}")).await;

    assert_eq!(zeros["status"], "ok", "{zeros}");
    assert_eq!(zeros["data"]["page"], 1);
    assert_eq!(zeros["data"]["page_size"], 1);
    assert_eq!(ids(&zeros).len(), 1);
    assert_eq!(zeros["data"]["total"], 2);
    assert_eq!(negative["data"]["page"], 1);
    assert_eq!(negative["data"]["page_size"], 1);
    assert_eq!(huge["data"]["page_size"], 100);
    assert_eq!(ids(&huge).len(), 2);
    // A page far past the end is empty, and echoed as asked, as AstrBot's
    // unbounded integers echo it.
    assert_eq!(far["data"]["page"], 5_000_000_000_i64);
    assert_eq!(ids(&far).len(), 0);
    assert_eq!(far["data"]["total"], 2);
}

#[tokio::test]
async fn page_values_that_are_not_integers_are_refused() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let user = unique("user");

    let mut answers = Vec::new();
    for paging in [
        "page=x&page_size=y",
        "page=1.5",
        "page_size=x",
        "page=",
        "page=1e2",
    ] {
        answers.push((
            paging,
            sessions(&app, &key, &format!("{paging}&username={user}")).await,
        ));
    }

    for (paging, body) in answers {
        assert_eq!(
            body,
            error("page and page_size must be integers"),
            "{paging}"
        );
    }
}

#[tokio::test]
async fn page_values_with_surrounding_whitespace_are_accepted() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let user = unique("user");

    let body = sessions(
        &app,
        &key,
        &format!("page=%201%20&page_size=%202%20&username={user}"),
    )
    .await;

    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["data"]["page"], 1);
    assert_eq!(body["data"]["page_size"], 2);
}

#[tokio::test]
async fn a_missing_or_blank_username_is_refused() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;

    let missing = sessions(&app, &key, "page=1&page_size=10").await;
    let empty = sessions(&app, &key, "username=").await;
    let blank = sessions(&app, &key, "username=%20%20").await;

    assert_eq!(missing, error("Missing key: username"));
    assert_eq!(empty, error("username is empty"));
    assert_eq!(blank, error("username is empty"));
}

#[tokio::test]
async fn the_username_is_checked_before_the_page_values() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;

    let body = sessions(&app, &key, "page=x").await;

    assert_eq!(body, error("Missing key: username"));
}

#[tokio::test]
async fn platform_id_filters_and_an_empty_one_does_not() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let user = unique("user");
    let webchat = unique("web");
    let telegram = unique("tg");
    chat_in(&app, &key, &user, &webchat).await;
    store(&app)
        .await
        .create_session(&telegram, "telegram", &user, true)
        .await
        .unwrap();

    let only_telegram =
        sessions(&app, &key, &format!("platform_id=telegram&username={user}")).await;
    let only_webchat = sessions(&app, &key, &format!("platform_id=webchat&username={user}")).await;
    let unfiltered = sessions(&app, &key, &format!("platform_id=&username={user}")).await;
    let other = sessions(&app, &key, &format!("platform_id=discord&username={user}")).await;

    assert_eq!(only_telegram["data"]["total"], 1);
    assert_eq!(ids(&only_telegram), [telegram]);
    let session = &only_telegram["data"]["sessions"][0];
    assert_eq!(session["platform_id"], "telegram");
    assert_eq!(session["is_group"], 1);
    assert_eq!(only_webchat["data"]["total"], 1);
    assert_eq!(ids(&only_webchat), [webchat]);
    assert_eq!(
        only_webchat["data"]["sessions"][0]["platform_id"],
        "webchat"
    );
    assert_eq!(unfiltered["data"]["total"], 2);
    assert_eq!(other["data"]["total"], 0);
    assert_eq!(ids(&other).len(), 0);
}

#[tokio::test]
async fn sessions_are_listed_newest_first() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let user = unique("user");
    let store = store(&app).await;
    let mut created = Vec::new();
    for index in 0..4 {
        let id = format!("{}-{index}", unique("ordered"));
        store
            .create_session(&id, "webchat", &user, false)
            .await
            .unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        created.push(id);
    }

    let body = sessions(&app, &key, &format!("username={user}")).await;

    created.reverse();
    assert_eq!(ids(&body), created);
}

#[tokio::test]
async fn the_creator_filter_is_exact_on_the_trimmed_username() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let user = unique("carol");
    let store = store(&app).await;
    store
        .create_session(&unique("exact"), "webchat", &user, false)
        .await
        .unwrap();
    store
        .create_session(&unique("upper"), "webchat", &user.to_uppercase(), false)
        .await
        .unwrap();
    store
        .create_session(&unique("padded"), "webchat", &format!("{user} "), false)
        .await
        .unwrap();
    store
        .create_session(&unique("longer"), "webchat", &format!("{user}x"), false)
        .await
        .unwrap();

    let exact = sessions(&app, &key, &format!("username={user}")).await;
    let trimmed_query = sessions(&app, &key, &format!("username=%20{user}%20")).await;

    assert_eq!(exact["data"]["total"], 1, "{exact}");
    assert_eq!(exact["data"]["sessions"][0]["creator"], user.as_str());
    assert_eq!(trimmed_query["data"]["total"], 1, "{trimmed_query}");
    assert_eq!(
        trimmed_query["data"]["sessions"][0]["creator"],
        user.as_str()
    );
}

#[tokio::test]
async fn any_chat_key_can_list_any_users_sessions() {
    let app = spawn_app().await;
    let (first_key, _) = app.create_key(&["chat"]).await;
    let (second_key, _) = app.create_key(&["chat"]).await;
    let user = unique("user");
    chat_in(&app, &first_key, &user, &unique("s")).await;

    let body = sessions(&app, &second_key, &format!("username={user}")).await;

    assert_eq!(body["data"]["total"], 1);
}

#[tokio::test]
async fn a_session_object_has_the_documented_fields_and_rfc3339_timestamps() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let user = unique("user");
    let chatted = unique("chatted");
    chat_in(&app, &key, &user, &chatted).await;
    store(&app)
        .await
        .create_session(&unique("stored"), "webchat", &user, false)
        .await
        .unwrap();

    let body = sessions(&app, &key, &format!("username={user}")).await;

    let list = body["data"]["sessions"].as_array().unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.iter().any(|s| s["session_id"] == chatted.as_str()));
    for session in list {
        let fields: Vec<&String> = session.as_object().unwrap().keys().collect();
        let mut fields: Vec<&str> = fields.iter().map(|f| f.as_str()).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "created_at",
                "creator",
                "display_name",
                "is_group",
                "platform_id",
                "session_id",
                "updated_at"
            ]
        );
        assert!(session["session_id"].is_string());
        assert_eq!(session["platform_id"], "webchat");
        assert_eq!(session["creator"], user.as_str());
        assert!(
            session["display_name"].is_null() || session["display_name"].is_string(),
            "{session}"
        );
        assert_eq!(session["is_group"], 0);
        let created = session["created_at"].as_str().unwrap();
        let updated = session["updated_at"].as_str().unwrap();
        assert!(created.ends_with("+00:00"), "{created}");
        assert!(updated.ends_with("+00:00"), "{updated}");
        let created = chrono::DateTime::parse_from_rfc3339(created).unwrap();
        let updated = chrono::DateTime::parse_from_rfc3339(updated).unwrap();
        assert!(created <= updated);
        let age = chrono::Utc::now().signed_duration_since(created);
        assert!(
            age >= chrono::Duration::zero() && age < chrono::Duration::minutes(5),
            "{age}"
        );
    }
}

#[tokio::test]
async fn a_session_opened_by_a_failed_chat_still_appears() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let user = unique("user");
    let session = unique("side-effect");

    let stream = app
        .chat(
            &key,
            json!({"username": user, "session_id": session, "message": ""}),
        )
        .await;
    let body = sessions(&app, &key, &format!("username={user}")).await;

    assert_eq!(stream.events[0], error("Message are both empty"));
    assert_eq!(ids(&body), [session]);
}

//! §4.2–§4.3 and §7.3: creating, listing, revoking and deleting developer
//! API keys through the admin API.

use astrbot_core::store::NewApiKey;
use astrbot_core::Store;
use astrbot_server::auth::api_key;
use astrbot_store::SqliteStore;
use chrono::{DateTime, Duration, FixedOffset, Utc};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

const KEY_FIELDS: [&str; 12] = [
    "key_id",
    "name",
    "key_prefix",
    "scopes",
    "created_by",
    "created_at",
    "updated_at",
    "last_used_at",
    "expires_at",
    "revoked_at",
    "is_revoked",
    "is_expired",
];

async fn create(app: &TestApp, token: &str, body: Value) -> Value {
    let (status, answer) = app.admin_post(token, "/api/apikey/create", body).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    answer
}

async fn list(app: &TestApp, token: &str) -> Vec<Value> {
    let (status, answer) = app.admin_get(token, "/api/apikey/list").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["status"], "ok", "{answer}");
    answer["data"].as_array().expect("data is an array").clone()
}

fn error(message: &str) -> Value {
    json!({"status": "error", "message": message, "data": null})
}

fn instant(value: &Value) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(
        value
            .as_str()
            .unwrap_or_else(|| panic!("a timestamp, got {value}")),
    )
    .unwrap()
}

fn assert_about(value: &Value, expected: DateTime<Utc>) {
    let actual = instant(value);
    let gap = (actual.with_timezone(&Utc) - expected).num_seconds().abs();
    assert!(gap < 120, "{actual} is not about {expected}");
}

fn is_url_safe(text: &str) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[tokio::test]
async fn a_created_key_has_astrbots_shape_and_defaults() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    let body = create(&app, &token, json!({"name": "shape"})).await;

    assert_eq!(body["status"], "ok", "{body}");
    assert!(body["message"].is_null());
    let data = &body["data"];
    let plaintext = data["api_key"].as_str().unwrap();
    assert_eq!(plaintext.len(), 47);
    assert!(plaintext.starts_with("abk_"));
    assert!(is_url_safe(&plaintext[4..]), "{plaintext}");
    assert_eq!(data["key_prefix"], plaintext[..12]);
    assert_eq!(data["scopes"], json!(["chat", "config", "file", "im"]));
    assert_eq!(data["name"], "shape");
    assert_eq!(data["created_by"], "astrbot");
    assert!(uuid::Uuid::parse_str(data["key_id"].as_str().unwrap()).is_ok());
    assert!(data["expires_at"].is_null());
    assert!(data["revoked_at"].is_null());
    assert!(data["last_used_at"].is_null());
    assert_eq!(data["is_revoked"], false);
    assert_eq!(data["is_expired"], false);
    assert_about(&data["created_at"], Utc::now());
    assert!(data["created_at"].as_str().unwrap().ends_with("+00:00"));
    let mut keys: Vec<&str> = data
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    let mut expected: Vec<&str> = KEY_FIELDS.iter().copied().chain(["api_key"]).collect();
    expected.sort_unstable();
    assert_eq!(keys, expected);
}

#[tokio::test]
async fn two_keys_are_different() {
    let app = spawn_app().await;

    let (first, first_id) = app.create_key(&["im"]).await;
    let (second, second_id) = app.create_key(&["im"]).await;

    assert_ne!(first, second);
    assert_ne!(first_id, second_id);
}

#[tokio::test]
async fn scopes_are_filtered_and_deduplicated_in_first_seen_order() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    let body = create(
        &app,
        &token,
        json!({"scopes": ["im", "bogus", "chat", "im", 5, null, "*", "CHAT", "chat"]}),
    )
    .await;
    let null_scopes = create(&app, &token, json!({"scopes": null})).await;

    assert_eq!(body["status"], "ok", "{body}");
    assert_eq!(body["data"]["scopes"], json!(["im", "chat"]));
    assert_eq!(
        null_scopes["data"]["scopes"],
        json!(["chat", "config", "file", "im"])
    );
}

#[tokio::test]
async fn scopes_with_nothing_valid_are_refused() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    let nope = create(&app, &token, json!({"scopes": ["nope"]})).await;
    let empty = create(&app, &token, json!({"scopes": []})).await;
    let wildcard = create(&app, &token, json!({"scopes": ["*"]})).await;

    for body in [nope, empty, wildcard] {
        assert_eq!(body, error("At least one valid scope is required"));
    }
}

#[tokio::test]
async fn scopes_that_are_not_a_list_are_refused() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    let mut answers = Vec::new();
    for scopes in [json!("chat"), json!({"chat": true}), json!(1), json!(true)] {
        answers.push((
            scopes.clone(),
            create(&app, &token, json!({"scopes": scopes})).await,
        ));
    }

    for (scopes, body) in answers {
        assert_eq!(body, error("Invalid scopes"), "scopes {scopes}");
    }
}

#[tokio::test]
async fn expires_in_days_must_be_positive() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    let mut answers = Vec::new();
    for days in [json!(0), json!(-1), json!("0"), json!(false), json!(0.5)] {
        answers.push((
            days.clone(),
            create(&app, &token, json!({"expires_in_days": days})).await,
        ));
    }

    for (days, body) in answers {
        assert_eq!(
            body,
            error("expires_in_days must be greater than 0"),
            "days {days}"
        );
    }
}

#[tokio::test]
async fn expires_in_days_must_convert_to_an_integer() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    let mut answers = Vec::new();
    for days in [json!("abc"), json!("1.5"), json!(""), json!("7 days")] {
        answers.push((
            days.clone(),
            create(&app, &token, json!({"expires_in_days": days})).await,
        ));
    }

    for (days, body) in answers {
        assert_eq!(
            body,
            error("expires_in_days must be an integer"),
            "days {days}"
        );
    }
}

#[tokio::test]
async fn expires_in_days_accepts_what_python_int_accepts() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    let mut answers = Vec::new();
    for (days, expected) in [
        (json!(7), 7),
        (json!("7"), 7),
        (json!(" 30 "), 30),
        (json!(7.9), 7),
        (json!(true), 1),
    ] {
        answers.push((
            days.clone(),
            expected,
            create(&app, &token, json!({"expires_in_days": days})).await,
        ));
    }

    for (days, expected, body) in answers {
        assert_eq!(body["status"], "ok", "days {days}: {body}");
        assert_about(
            &body["data"]["expires_at"],
            Utc::now() + Duration::days(expected),
        );
        assert_eq!(body["data"]["is_expired"], false);
    }
}

#[tokio::test]
async fn a_missing_or_null_expiry_makes_a_permanent_key() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    let omitted = create(&app, &token, json!({})).await;
    let null = create(&app, &token, json!({"expires_in_days": null})).await;

    assert!(omitted["data"]["expires_at"].is_null(), "{omitted}");
    assert!(null["data"]["expires_at"].is_null(), "{null}");
}

#[tokio::test]
async fn an_expiry_past_year_9999_is_refused_and_the_latest_one_works() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    // Past the end of year 9999 a timestamp no longer fits the stored form.
    let refused = create(&app, &token, json!({"expires_in_days": 2_912_104})).await;
    let message = refused["message"].as_str().unwrap();
    let most: i64 = message
        .strip_prefix("expires_in_days must be at most ")
        .and_then(|days| days.parse().ok())
        .unwrap_or_else(|| panic!("{refused}"));
    // Python's int() takes numbers of any size: too far, not "not an integer".
    for huge in [json!(1e20), json!("9999999999999999999999")] {
        let refused = create(&app, &token, json!({"expires_in_days": huge})).await;
        assert_eq!(refused["message"], message, "{huge}");
    }
    assert!(list(&app, &token).await.is_empty(), "nothing was created");

    let latest = create(&app, &token, json!({"expires_in_days": most})).await;
    assert_eq!(latest["status"], "ok", "{latest}");
    let expires_at = instant(&latest["data"]["expires_at"]);
    assert_eq!(expires_at.format("%Y").to_string(), "9999");
    let plaintext = latest["data"]["api_key"].as_str().unwrap();
    let (status, _) = app.get("/api/v1/im/bots", Some(plaintext)).await;
    assert_eq!(status, StatusCode::OK, "the key works");
    assert_eq!(list(&app, &token).await.len(), 1, "and lists");
}

#[tokio::test]
async fn a_body_that_is_not_json_creates_no_key() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let post = |body: &'static [u8]| {
        reqwest::Client::new()
            .post(app.url("/api/apikey/create"))
            .bearer_auth(&token)
            .header("Content-Type", "application/json")
            .body(body)
            .send()
    };

    // Read as `{}`, this would have made a key with every scope and no expiry.
    let trailing_comma = post(br#"{"name": "ro", "scopes": ["im"], "expires_in_days": 1,}"#);
    let (status, answer) = into_json(trailing_comma.await.unwrap()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer, error("Request body is not valid JSON"));
    assert!(list(&app, &token).await.is_empty());

    // A byte order mark, as some Windows tools write, is JSON to Python.
    let with_bom =
        post(b"\xEF\xBB\xBF{\"name\": \"ci\", \"scopes\": [\"config\"], \"expires_in_days\": 7}");
    let (status, answer) = into_json(with_bom.await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["data"]["scopes"], json!(["config"]), "{answer}");
    assert!(answer["data"]["expires_at"].is_string(), "{answer}");
}

#[tokio::test]
async fn a_body_over_16_mib_is_refused_in_the_envelope_and_closes_the_connection() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let padding = "x".repeat(16 * 1024 * 1024);
    let body = format!(r#"{{"name": "big", "padding": "{padding}"}}"#);

    let response = reqwest::Client::new()
        .post(app.url("/api/apikey/create"))
        .bearer_auth(&token)
        .header("Content-Type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();

    let closes = response.headers().get("connection").cloned();
    let (status, answer) = into_json(response).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(answer, error("Request body is larger than 16 MiB"));
    assert_eq!(
        closes.as_ref().map(|value| value.to_str().unwrap()),
        Some("close")
    );
    assert!(list(&app, &token).await.is_empty(), "nothing was created");
}

#[tokio::test]
async fn an_empty_name_becomes_untitled_and_names_are_trimmed() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    let mut answers = Vec::new();
    for (name, expected) in [
        (Some(json!("")), "Untitled API Key"),
        (Some(json!("   ")), "Untitled API Key"),
        (Some(json!(null)), "Untitled API Key"),
        (None, "Untitled API Key"),
        (Some(json!("  My key  ")), "My key"),
        (Some(json!(42)), "42"),
    ] {
        let body = match &name {
            Some(name) => json!({"name": name}),
            None => json!({}),
        };
        answers.push((name, expected, create(&app, &token, body).await));
    }

    for (name, expected, body) in answers {
        assert_eq!(body["data"]["name"], expected, "name {name:?}: {body}");
    }
}

#[tokio::test]
async fn the_list_is_newest_first_with_every_field_and_no_hash() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let mut created = Vec::new();
    for name in ["first", "second", "third"] {
        let body = create(&app, &token, json!({"name": name, "scopes": ["im"]})).await;
        created.push(body["data"].clone());
    }

    let listed = list(&app, &token).await;

    let ids: Vec<&Value> = listed.iter().map(|key| &key["key_id"]).collect();
    let expected: Vec<&Value> = created.iter().rev().map(|key| &key["key_id"]).collect();
    assert_eq!(ids, expected);
    for (key, original) in listed.iter().zip(created.iter().rev()) {
        let mut fields: Vec<&str> = key
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        fields.sort_unstable();
        let mut expected_fields = KEY_FIELDS.to_vec();
        expected_fields.sort_unstable();
        assert_eq!(
            fields, expected_fields,
            "every field, no hash, no plaintext"
        );
        for field in KEY_FIELDS {
            assert_eq!(key[field], original[field], "{field}");
        }
        assert!(key["key_id"].is_string());
        assert!(key["name"].is_string());
        assert!(key["key_prefix"].is_string());
        assert!(key["scopes"].is_array());
        assert!(key["created_by"].is_string());
        instant(&key["created_at"]);
        instant(&key["updated_at"]);
    }
}

#[tokio::test]
async fn the_list_flags_revoked_and_expired_keys() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let (_, revoked_id) = app.create_key(&["im"]).await;
    let (_, active_id) = app.create_key(&["im"]).await;
    let store = SqliteStore::open(&app.data_dir().join("astrbot-rs.db"))
        .await
        .unwrap();
    let generated = api_key::generate();
    let expired = store
        .create_api_key(NewApiKey {
            key_id: uuid::Uuid::new_v4().to_string(),
            name: "expired".into(),
            key_hash: generated.key_hash,
            lookup_hash: generated.lookup_hash,
            key_prefix: generated.prefix,
            scopes: vec!["im".into()],
            created_by: "test".into(),
            expires_at: Some(Utc::now() - Duration::hours(1)),
        })
        .await
        .unwrap();

    let (_, revoke) = app
        .admin_post(&token, "/api/apikey/revoke", json!({"key_id": revoked_id}))
        .await;
    let listed = list(&app, &token).await;

    assert_eq!(revoke, json!({"status": "ok", "message": null, "data": {}}));
    let find = |id: &str| {
        listed
            .iter()
            .find(|key| key["key_id"] == id)
            .unwrap()
            .clone()
    };
    let revoked = find(&revoked_id);
    assert_eq!(revoked["is_revoked"], true);
    assert_eq!(revoked["is_expired"], false);
    assert_about(&revoked["revoked_at"], Utc::now());
    let active = find(&active_id);
    assert_eq!(active["is_revoked"], false);
    assert!(active["revoked_at"].is_null());
    let expired = find(&expired.key_id);
    assert_eq!(expired["is_expired"], true);
    assert_eq!(expired["is_revoked"], false);
    assert_about(&expired["expires_at"], Utc::now() - Duration::hours(1));
}

#[tokio::test]
async fn revoking_twice_succeeds_both_times() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let (_, key_id) = app.create_key(&["im"]).await;

    let (_, first) = app
        .admin_post(&token, "/api/apikey/revoke", json!({"key_id": key_id}))
        .await;
    let first_at = list(&app, &token).await[0]["revoked_at"].clone();
    let (_, second) = app
        .admin_post(&token, "/api/apikey/revoke", json!({"key_id": key_id}))
        .await;
    let second_at = list(&app, &token).await[0]["revoked_at"].clone();

    assert_eq!(first, json!({"status": "ok", "message": null, "data": {}}));
    assert_eq!(second, json!({"status": "ok", "message": null, "data": {}}));
    assert!(instant(&second_at) >= instant(&first_at));
}

#[tokio::test]
async fn revoking_or_deleting_an_unknown_key_is_not_found() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let unknown = uuid::Uuid::new_v4().to_string();

    let (_, revoke) = app
        .admin_post(&token, "/api/apikey/revoke", json!({"key_id": unknown}))
        .await;
    let (_, delete) = app
        .admin_post(&token, "/api/apikey/delete", json!({"key_id": unknown}))
        .await;

    assert_eq!(revoke, error("API key not found"));
    assert_eq!(delete, error("API key not found"));
}

#[tokio::test]
async fn a_missing_key_id_is_reported() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    let mut answers = Vec::new();
    for path in ["/api/apikey/revoke", "/api/apikey/delete"] {
        // AstrBot tests `not key_id`: every falsy value is missing.
        let falsy = [
            json!(""),
            json!(null),
            json!(0),
            json!(false),
            json!([]),
            json!({}),
        ];
        let bodies = falsy.into_iter().map(|id| json!({"key_id": id}));
        for body in std::iter::once(json!({})).chain(bodies) {
            let (_, answer) = app.admin_post(&token, path, body.clone()).await;
            answers.push((path, body, answer));
        }
    }

    for (path, body, answer) in answers {
        assert_eq!(answer, error("Missing key: key_id"), "{path} {body}");
    }
}

#[tokio::test]
async fn a_deleted_key_is_gone_from_the_list_and_cannot_be_revoked() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let (_, key_id) = app.create_key(&["im"]).await;

    let (_, deleted) = app
        .admin_post(&token, "/api/apikey/delete", json!({"key_id": key_id}))
        .await;
    let (_, revoke) = app
        .admin_post(&token, "/api/apikey/revoke", json!({"key_id": key_id}))
        .await;
    let (_, delete_again) = app
        .admin_post(&token, "/api/apikey/delete", json!({"key_id": key_id}))
        .await;
    let listed = list(&app, &token).await;

    assert_eq!(
        deleted,
        json!({"status": "ok", "message": null, "data": {}})
    );
    assert_eq!(revoke, error("API key not found"));
    assert_eq!(delete_again, error("API key not found"));
    assert!(listed.iter().all(|key| key["key_id"] != key_id.as_str()));
}

#[tokio::test]
async fn the_key_admin_endpoints_need_the_dashboard_token() {
    let app = spawn_app().await;

    let (list_status, _) = app.get("/api/apikey/list", None).await;
    let (create_status, _) = app.post_json("/api/apikey/create", None, json!({})).await;
    let (revoke_status, _) = app
        .post_json("/api/apikey/revoke", None, json!({"key_id": "x"}))
        .await;
    let (delete_status, _) = app
        .post_json("/api/apikey/delete", None, json!({"key_id": "x"}))
        .await;

    for status in [list_status, create_status, revoke_status, delete_status] {
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn the_plaintext_key_is_written_to_no_file_of_the_data_root() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat", "config", "file", "im"]).await;
    let (status, _) = app.get("/api/v1/im/bots", Some(&key)).await;
    let (configs_status, _) = app.get("/api/v1/configs", Some(&key)).await;

    let files = files_under(&app.root);

    assert_eq!(status, StatusCode::OK);
    assert_eq!(configs_status, StatusCode::OK);
    assert!(
        files.iter().any(|f| f.ends_with("astrbot-rs.db")),
        "the database is among the scanned files: {files:?}"
    );
    for file in files {
        let bytes = std::fs::read(&file).unwrap_or_default();
        let found = bytes
            .windows(key.len())
            .any(|window| window == key.as_bytes());
        assert!(!found, "the plaintext key is in {}", file.display());
        let secret = &key[12..];
        let found_secret = bytes
            .windows(secret.len())
            .any(|window| window == secret.as_bytes());
        assert!(
            !found_secret,
            "the secret part of the key is in {}",
            file.display()
        );
    }
}

#[tokio::test]
async fn an_expiry_written_by_another_tool_in_iso_form_still_ends_the_key() {
    let app = spawn_app().await;
    let (key, key_id) = app.create_key(&["im"]).await;
    assert_eq!(app.get("/api/v1/im/bots", Some(&key)).await.0, 200);

    // `2026-12-04T10:00:00.000000`: a `T` instead of the space sorts after
    // every same-day time in SQL's text comparison.
    let expired = (Utc::now() - Duration::seconds(1))
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string();
    let database = app.data_dir().join("astrbot-rs.db");
    let another_tool = rusqlite::Connection::open(&database).unwrap();
    another_tool
        .execute(
            "UPDATE api_keys SET expires_at = ? WHERE key_id = ?",
            [&expired, &key_id],
        )
        .unwrap();
    drop(another_tool);

    let (status, body) = app.get("/api/v1/im/bots", Some(&key)).await;
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["message"], "Invalid API key");
}

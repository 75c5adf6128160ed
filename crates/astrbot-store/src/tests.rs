//! Tests of every `Store` method against a real SQLite file in a fresh temp
//! directory, plus the timestamp codec and reopening an existing file.

use std::path::PathBuf;
use std::time::Duration;

use astrbot_core::persona::NO_PERSONA;
use astrbot_core::store::{
    ChatState, ChatStateQuery, ConversationContent, ConversationRecord, ConversationUpdate,
    NewApiKey, NewHistory, PersonaRecord,
};
use astrbot_core::{Store, StoreError};
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::value::RawValue;
use serde_json::{json, Value};

use crate::codec::{decode_ts, encode_ts};
use crate::SqliteStore;

/// A temp directory removed on drop, holding one database file.
pub(crate) struct TempDb {
    dir: PathBuf,
}

impl TempDb {
    pub(crate) fn new() -> TempDb {
        let dir = std::env::temp_dir().join(format!("astrbot-store-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDb { dir }
    }

    fn path(&self) -> PathBuf {
        self.dir.join("data_v4.db")
    }

    pub(crate) async fn open(&self) -> SqliteStore {
        SqliteStore::open(&self.path()).await.expect("open store")
    }
}

impl Drop for TempDb {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn new_key(id: &str, expires_at: Option<DateTime<Utc>>) -> NewApiKey {
    NewApiKey {
        key_id: id.to_owned(),
        name: format!("key {id}"),
        key_hash: format!("pbkdf2-{id}"),
        lookup_hash: format!("sha-{id}"),
        key_prefix: "abk_1234".to_owned(),
        scopes: vec!["chat".to_owned(), "im".to_owned()],
        created_by: "astrbot".to_owned(),
        expires_at,
    }
}

fn at(text: &str) -> DateTime<Utc> {
    decode_ts(text).expect("test timestamp")
}

/// Runs SQL on the store's writing connection, for states the `Store` API
/// cannot make.
async fn exec(store: &SqliteStore, sql: &str, params: impl rusqlite::Params) {
    let writer = store.shared.writer.lock().await;
    writer.execute(sql, params).expect(sql);
}

/// The first column of the first row `sql` returns.
async fn scalar<T: rusqlite::types::FromSql>(store: &SqliteStore, sql: &str) -> T {
    let writer = store.shared.writer.lock().await;
    writer.query_row(sql, [], |row| row.get(0)).expect(sql)
}

/// `list`'s messages, each as the JSON text a conversation stores.
fn raw_messages(list: Value) -> Vec<Box<RawValue>> {
    serde_json::from_value(list).unwrap()
}

/// A conversation's content holding `list`'s messages.
fn listed(list: Value) -> ConversationContent {
    ConversationContent::Messages(raw_messages(list))
}

/// Makes sure the next `time::now()` differs from the last one.
async fn tick() {
    tokio::time::sleep(Duration::from_millis(3)).await;
}

// ---- timestamps -----------------------------------------------------------

#[test]
fn timestamp_format_is_fixed_width_and_round_trips_microseconds() {
    let instant = Utc.with_ymd_and_hms(2026, 2, 21, 9, 20, 26).unwrap();
    assert_eq!(encode_ts(instant), "2026-02-21 09:20:26.000000");
    let fine = instant + chrono::Duration::microseconds(123_456);
    assert_eq!(encode_ts(fine), "2026-02-21 09:20:26.123456");
    assert_eq!(decode_ts(&encode_ts(fine)).unwrap(), fine);
    let one = instant + chrono::Duration::microseconds(1);
    assert_eq!(decode_ts(&encode_ts(one)).unwrap(), one);
    // Nanoseconds are dropped, never rounded up.
    let nanos = instant + chrono::Duration::nanoseconds(999_999_999);
    assert_eq!(encode_ts(nanos), "2026-02-21 09:20:26.999999");
}

#[test]
fn timestamp_codec_agrees_with_chrono() {
    // Instants spread over years, months, leap days and microseconds.
    let steps = [1, 999_999, 86_400_000_007, 3_600_000_123, 2_629_746_000_001];
    let mut instant = Utc.with_ymd_and_hms(1999, 12, 31, 23, 59, 58).unwrap();
    for round in 0..2_000_i64 {
        let step = steps[round as usize % steps.len()] * (round % 7 + 1);
        instant += chrono::Duration::microseconds(step);
        let text = encode_ts(instant);
        assert_eq!(text, instant.format("%Y-%m-%d %H:%M:%S%.6f").to_string());
        let by_chrono = NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f").unwrap();
        assert_eq!(decode_ts(&text).unwrap(), by_chrono.and_utc());
        assert_eq!(decode_ts(&text).unwrap(), instant);
    }

    // Text in our layout that is not a real instant, or not quite our
    // layout, is left to chrono's parser and gets its answer.
    let odd = [
        "2026-02-30 09:20:26.000000",
        "2025-02-29 09:20:26.000000",
        "2026-02-21 24:00:00.000000",
        "2026-02-21 09:20:60.000000",
        "2026-02-21 09:20:26.12345x",
        "+026-02-21 09:20:26.000000",
        "2026-02-21T09:20:26.000000",
        "2026-02-21 09:20:26.1234567",
    ];
    for text in odd {
        let by_chrono = ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"]
            .into_iter()
            .find_map(|format| NaiveDateTime::parse_from_str(text, format).ok())
            .map(|naive| naive.and_utc());
        assert_eq!(decode_ts(text).ok(), by_chrono, "{text}");
    }

    // Years we never write still print in full.
    let far = Utc.with_ymd_and_hms(12345, 1, 2, 3, 4, 5).unwrap();
    assert_eq!(encode_ts(far), "12345-01-02 03:04:05.000000");
}

#[test]
fn timestamp_decoder_accepts_other_writers_and_rejects_garbage() {
    let expected = Utc.with_ymd_and_hms(2026, 2, 21, 9, 20, 26).unwrap();
    assert_eq!(decode_ts("2026-02-21 09:20:26").unwrap(), expected);
    assert_eq!(decode_ts("2026-02-21T09:20:26").unwrap(), expected);
    assert_eq!(decode_ts("2026-02-21T17:20:26+08:00").unwrap(), expected);
    assert!(matches!(
        decode_ts("yesterday"),
        Err(StoreError::Corrupt(_))
    ));
}

#[tokio::test]
async fn timestamps_round_trip_through_the_database() {
    let db = TempDb::new();
    let store = db.open().await;
    let expires = Utc.with_ymd_and_hms(2031, 1, 2, 3, 4, 5).unwrap()
        + chrono::Duration::microseconds(654_321);
    let created = store
        .create_api_key(new_key("k1", Some(expires)))
        .await
        .unwrap();
    let read = store.get_api_key("k1").await.unwrap().unwrap();
    assert_eq!(read.expires_at, Some(expires));
    assert_eq!(read, created);

    // Sub-microsecond input is stored truncated, and the returned record
    // already says so.
    let with_nanos = expires + chrono::Duration::nanoseconds(789);
    let created = store
        .create_api_key(new_key("k2", Some(with_nanos)))
        .await
        .unwrap();
    assert_eq!(created.expires_at, Some(expires));
    assert_eq!(store.get_api_key("k2").await.unwrap().unwrap(), created);

    let raw: String = scalar(
        &store,
        "SELECT expires_at FROM api_keys WHERE key_id = 'k1'",
    )
    .await;
    assert_eq!(raw, "2031-01-02 03:04:05.654321");
}

#[tokio::test]
async fn unreadable_stored_data_is_corrupt_not_a_panic() {
    let db = TempDb::new();
    let store = db.open().await;
    store
        .create_session("s1", "webchat", "alice", false)
        .await
        .unwrap();
    exec(
        &store,
        "UPDATE platform_sessions SET created_at = 'not a time'",
        [],
    )
    .await;
    assert!(matches!(
        store.get_session("s1").await,
        Err(StoreError::Corrupt(_))
    ));

    let turn = store
        .insert_history(history("webchat", "s1", json!({"type": "user"})))
        .await;
    let id = turn.unwrap().id;
    exec(
        &store,
        "UPDATE platform_message_history SET content = '{broken'",
        [],
    )
    .await;
    assert!(matches!(
        store.get_history(id).await,
        Err(StoreError::Corrupt(_))
    ));

    // Timestamps and JSON are read in place as text; a value SQLite holds
    // as a number or a blob is refused the same way.
    store
        .create_api_key(new_key("k1", Some(Utc::now())))
        .await
        .unwrap();
    exec(&store, "UPDATE api_keys SET expires_at = 20260101", []).await;
    assert!(matches!(
        store.get_api_key("k1").await,
        Err(StoreError::Corrupt(message)) if message.contains("expires_at")
    ));
    exec(
        &store,
        "UPDATE platform_message_history SET content = x'7b7d'",
        [],
    )
    .await;
    assert!(matches!(
        store.get_history(id).await,
        Err(StoreError::Corrupt(message)) if message.contains("content")
    ));
}

#[tokio::test]
async fn a_conversation_without_content_reads_as_empty() {
    let db = TempDb::new();
    let store = db.open().await;
    let created = store
        .create_conversation("webchat", "webchat:FriendMessage:webchat!alice!s1")
        .await
        .unwrap();
    exec(&store, "UPDATE conversations SET content = NULL", []).await;

    let read = store
        .get_conversation(&created.conversation_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.content, listed(json!([])));
}

#[tokio::test]
async fn a_conversation_that_holds_no_list_reads_as_unreadable_without_failing_the_read() {
    let db = TempDb::new();
    let store = db.open().await;
    let umo = "webchat:FriendMessage:webchat!alice!s1";
    let created = selected_conversation(&store, umo).await;
    store
        .put_preference("umo", umo, "provider_perf_chat_completion", &json!("p1"))
        .await
        .unwrap();

    for (content, why) in [
        ("{\"role\": \"user\"}", "not a list of messages"),
        // The column's affinity stores this one as a number.
        ("42", "not text"),
        ("[{\"role\": ", "not a list of messages"),
    ] {
        exec(&store, "UPDATE conversations SET content = ?", [content]).await;
        let read = store
            .get_conversation(&created.conversation_id)
            .await
            .unwrap()
            .unwrap();
        match &read.content {
            ConversationContent::Unreadable(error) => assert!(error.contains(why), "{error}"),
            other => panic!("{content} read as {other:?}"),
        }
        // The rest of the session's state still reads.
        let state = store.get_chat_state(query(umo, "default")).await.unwrap();
        assert_eq!(state.provider_preference, Some(json!("p1")));
        assert_eq!(state.conversation, Some(read));
    }
}

#[tokio::test]
async fn stored_messages_are_saved_back_as_they_were_written() {
    let db = TempDb::new();
    let store = db.open().await;
    let created = store.create_conversation("webchat", "umo").await.unwrap();
    // As Python's json module writes it: spaces after separators, key
    // order its own, escapes for everything outside ASCII.
    let python = r#"[{"content": "h\u00e9", "role": "user", "extra": {"a": [1, 2.50]}}]"#;
    exec(&store, "UPDATE conversations SET content = ?", [python]).await;
    let read = store
        .get_conversation(&created.conversation_id)
        .await
        .unwrap()
        .unwrap();
    let ConversationContent::Messages(mut messages) = read.content else {
        panic!("a list of messages");
    };
    messages.extend(raw_messages(
        json!([{"role": "assistant", "content": "hi"}]),
    ));

    store
        .save_answer(
            history("webchat", "s1", json!({"type": "bot"})),
            Some(ConversationUpdate {
                conversation_id: created.conversation_id.clone(),
                messages,
                token_usage: 3,
            }),
        )
        .await
        .unwrap();

    let saved: String = scalar(&store, "SELECT content FROM conversations").await;
    assert_eq!(
        saved,
        r#"[{"content": "h\u00e9", "role": "user", "extra": {"a": [1, 2.50]}},{"role":"assistant","content":"hi"}]"#
    );
}

// ---- API keys -------------------------------------------------------------

#[tokio::test]
async fn api_key_create_get_and_list_newest_first() {
    let db = TempDb::new();
    let store = db.open().await;
    assert!(store.list_api_keys().await.unwrap().is_empty());
    assert_eq!(store.get_api_key("nope").await.unwrap(), None);

    let first = store.create_api_key(new_key("a", None)).await.unwrap();
    assert_eq!(first.lookup_hash.as_deref(), Some("sha-a"));
    assert_eq!(first.scopes, Some(vec!["chat".to_owned(), "im".to_owned()]));
    assert_eq!(first.created_at, first.updated_at);
    assert_eq!(
        (first.last_used_at, first.revoked_at, first.expires_at),
        (None, None, None)
    );
    assert_eq!(store.get_api_key("a").await.unwrap(), Some(first));
    tick().await;
    store.create_api_key(new_key("b", None)).await.unwrap();
    tick().await;
    store.create_api_key(new_key("c", None)).await.unwrap();
    let ids: Vec<String> = store
        .list_api_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.key_id)
        .collect();
    assert_eq!(ids, ["c", "b", "a"]);

    // Equal created_at: the later insert still comes first.
    exec(
        &store,
        "UPDATE api_keys SET created_at = '2026-01-01 00:00:00.000000'",
        [],
    )
    .await;
    let ids: Vec<String> = store
        .list_api_keys()
        .await
        .unwrap()
        .into_iter()
        .map(|k| k.key_id)
        .collect();
    assert_eq!(ids, ["c", "b", "a"]);
}

#[tokio::test]
async fn api_key_duplicates_conflict() {
    let db = TempDb::new();
    let store = db.open().await;
    store.create_api_key(new_key("a", None)).await.unwrap();
    let same_id = store.create_api_key(new_key("a", None)).await;
    assert!(
        matches!(same_id, Err(StoreError::Conflict(_))),
        "{same_id:?}"
    );
    let mut same_hash = new_key("b", None);
    same_hash.key_hash = "pbkdf2-a".to_owned();
    assert!(matches!(
        store.create_api_key(same_hash).await,
        Err(StoreError::Conflict(_))
    ));
    let mut same_lookup = new_key("c", None);
    same_lookup.lookup_hash = "sha-a".to_owned();
    assert!(matches!(
        store.create_api_key(same_lookup).await,
        Err(StoreError::Conflict(_))
    ));
    store.create_api_key(new_key("d", None)).await.unwrap();
    let clash = store.set_api_key_lookup("d", "sha-a").await;
    assert!(matches!(clash, Err(StoreError::Conflict(_))));
}

#[tokio::test]
async fn scopes_decode_to_none_unless_a_list() {
    let db = TempDb::new();
    let store = db.open().await;
    store.create_api_key(new_key("a", None)).await.unwrap();
    let cases = [
        (None, None),
        (Some("not json"), None),
        (Some(r#"{"chat": true}"#), None),
        (Some(r#""chat""#), None),
        (Some(r#"["chat", "*"]"#), Some(vec!["chat", "*"])),
        (Some("[]"), Some(vec![])),
        // AstrBot's json.dumps spacing, and a non-string that grants nothing.
        (Some(r#"["file", 1, null]"#), Some(vec!["file"])),
    ];
    for (stored, expected) in cases {
        exec(
            &store,
            "UPDATE api_keys SET scopes = ? WHERE key_id = 'a'",
            [stored],
        )
        .await;
        let scopes = store.get_api_key("a").await.unwrap().unwrap().scopes;
        let expected = expected.map(|v| v.into_iter().map(str::to_owned).collect::<Vec<_>>());
        assert_eq!(scopes, expected, "stored {stored:?}");
    }
    // Values of other SQLite types, written by hand or by another tool,
    // read the same way instead of failing every request with the key.
    let typed = [
        ("5", None),
        ("1.5", None),
        (r#"CAST('["im"]' AS BLOB)"#, Some(vec!["im".to_owned()])),
        ("X'FF'", None),
    ];
    for (stored, expected) in typed {
        let sql = format!("UPDATE api_keys SET scopes = {stored} WHERE key_id = 'a'");
        exec(&store, &sql, []).await;
        let scopes = store.get_api_key("a").await.unwrap().unwrap().scopes;
        assert_eq!(scopes, expected, "stored {stored}");
    }
}

#[tokio::test]
async fn active_lookup_filters_revoked_and_expired() {
    let db = TempDb::new();
    let store = db.open().await;
    let now = at("2026-03-01 12:00:00.000000");
    store
        .create_api_key(new_key("permanent", None))
        .await
        .unwrap();
    store
        .create_api_key(new_key("future", Some(at("2026-03-01 12:00:00.000001"))))
        .await
        .unwrap();
    store
        .create_api_key(new_key("exact", Some(now)))
        .await
        .unwrap();
    store
        .create_api_key(new_key("past", Some(at("2026-02-01 00:00:00.000000"))))
        .await
        .unwrap();
    store
        .create_api_key(new_key("revoked", None))
        .await
        .unwrap();
    assert!(store.revoke_api_key("revoked", now).await.unwrap());

    for (id, active) in [
        ("permanent", true),
        ("future", true),
        ("exact", false),
        ("past", false),
        ("revoked", false),
    ] {
        let by_lookup = store
            .find_active_api_key_by_lookup(&format!("sha-{id}"), now)
            .await
            .unwrap();
        let by_hash = store
            .find_active_api_key_by_hash(&format!("pbkdf2-{id}"), now)
            .await
            .unwrap();
        assert_eq!(by_lookup.is_some(), active, "{id} by lookup");
        assert_eq!(by_hash.is_some(), active, "{id} by hash");
        if let Some(key) = by_lookup {
            assert_eq!(key.key_id, id);
        }
    }
    // The same key, checked before it expired.
    let earlier = at("2026-01-01 00:00:00.000000");
    assert!(store
        .find_active_api_key_by_lookup("sha-past", earlier)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .find_active_api_key_by_lookup("sha-unknown", now)
        .await
        .unwrap()
        .is_none());
    // Expired and revoked keys are still listed.
    assert_eq!(store.list_api_keys().await.unwrap().len(), 5);
}

#[tokio::test]
async fn keys_without_lookup_hash_can_be_backfilled() {
    let db = TempDb::new();
    let store = db.open().await;
    store.create_api_key(new_key("new", None)).await.unwrap();
    assert_eq!(store.count_api_keys_without_lookup().await.unwrap(), 0);
    // As AstrBot would have written it: no lookup_hash, json.dumps scopes.
    exec(
        &store,
        "INSERT INTO api_keys (key_id, name, key_hash, key_prefix, scopes, created_by, \
         created_at, updated_at) VALUES ('old', 'old', 'pbkdf2-old', 'abk_', '[\"chat\", \"im\"]', \
         'astrbot', '2025-12-01 08:00:00.123456', '2025-12-01 08:00:00.123456')",
        [],
    )
    .await;
    assert_eq!(store.count_api_keys_without_lookup().await.unwrap(), 1);
    let now = astrbot_core::time::now();
    let old = store
        .find_active_api_key_by_hash("pbkdf2-old", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.lookup_hash, None);
    assert_eq!(old.scopes, Some(vec!["chat".to_owned(), "im".to_owned()]));
    assert_eq!(old.created_at, at("2025-12-01 08:00:00.123456"));

    store.set_api_key_lookup("old", "sha-old").await.unwrap();
    assert_eq!(store.count_api_keys_without_lookup().await.unwrap(), 0);
    let found = store
        .find_active_api_key_by_lookup("sha-old", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.key_id, "old");
    // Unknown ids are a no-op, not an error.
    store.set_api_key_lookup("missing", "sha-x").await.unwrap();
}

#[tokio::test]
async fn touch_sets_last_used_and_updated() {
    let db = TempDb::new();
    let store = db.open().await;
    let created = store.create_api_key(new_key("a", None)).await.unwrap();
    let used = at("2030-05-06 07:08:09.101112");
    store.touch_api_key("a", used).await.unwrap();
    let key = store.get_api_key("a").await.unwrap().unwrap();
    assert_eq!(key.last_used_at, Some(used));
    assert_eq!(key.updated_at, used);
    assert_eq!(key.created_at, created.created_at);
    store.touch_api_key("missing", used).await.unwrap();
}

#[tokio::test]
async fn revoke_and_delete_report_whether_a_row_matched() {
    let db = TempDb::new();
    let store = db.open().await;
    store.create_api_key(new_key("a", None)).await.unwrap();
    let first = at("2026-03-01 00:00:00.000001");
    let second = at("2026-03-02 00:00:00.000002");
    assert!(store.revoke_api_key("a", first).await.unwrap());
    assert!(
        store.revoke_api_key("a", second).await.unwrap(),
        "revoking twice succeeds"
    );
    let key = store.get_api_key("a").await.unwrap().unwrap();
    assert_eq!(key.revoked_at, Some(second));
    assert_eq!(key.updated_at, second);
    assert!(!store.revoke_api_key("missing", first).await.unwrap());

    assert!(store.delete_api_key("a").await.unwrap());
    assert!(!store.delete_api_key("a").await.unwrap());
    assert_eq!(store.get_api_key("a").await.unwrap(), None);
}

// ---- sessions -------------------------------------------------------------

#[tokio::test]
async fn session_create_get_and_duplicate_conflict() {
    let db = TempDb::new();
    let store = db.open().await;
    assert_eq!(store.get_session("s1").await.unwrap(), None);
    let created = store
        .create_session("s1", "webchat", "alice", true)
        .await
        .unwrap();
    assert_eq!(created.display_name, None);
    assert!(created.is_group);
    assert_eq!(created.created_at, created.updated_at);
    assert_eq!(store.get_session("s1").await.unwrap(), Some(created));
    let again = store.create_session("s1", "other", "bob", false).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
}

#[tokio::test]
async fn a_session_and_its_first_turn_are_written_together() {
    let db = TempDb::new();
    let store = db.open().await;
    let first = store
        .create_session_with_turn("s1", "alice", json!({"type": "user"}))
        .await
        .unwrap();
    assert_eq!(first.sender_id.as_deref(), Some("alice"));
    let session = store.get_session("s1").await.unwrap().unwrap();
    assert_eq!(
        (session.creator.as_str(), session.platform_id.as_str()),
        ("alice", "webchat")
    );
    assert!(!session.is_group);
    let listed = store.list_history("webchat", "s1").await.unwrap();
    assert_eq!(listed, std::slice::from_ref(&first));

    // A clash writes neither the session nor the turn.
    let other_turn = json!({"type": "user", "n": 2});
    let again = store
        .create_session_with_turn("s1", "bob", other_turn)
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");
    assert_eq!(
        store.get_session("s1").await.unwrap().unwrap().creator,
        "alice"
    );
    assert_eq!(store.list_history("webchat", "s1").await.unwrap(), [first]);
}

#[tokio::test]
async fn a_display_name_is_set_once_and_bumps_updated_at() {
    let db = TempDb::new();
    let store = db.open().await;
    let created = store
        .create_session("s1", "webchat", "alice", false)
        .await
        .unwrap();
    tick().await;
    store
        .set_session_display_name("s1", "Trip plans")
        .await
        .unwrap();
    let named = store.get_session("s1").await.unwrap().unwrap();
    assert_eq!(named.display_name.as_deref(), Some("Trip plans"));
    assert_eq!(named.created_at, created.created_at);
    assert!(named.updated_at > created.updated_at);
    // A session that has a name keeps it.
    store
        .set_session_display_name("s1", "Another title")
        .await
        .unwrap();
    assert_eq!(store.get_session("s1").await.unwrap(), Some(named));
    store
        .set_session_display_name("missing", "x")
        .await
        .unwrap();
}

#[tokio::test]
async fn session_listing_pages_filters_and_counts() {
    let db = TempDb::new();
    let store = db.open().await;
    // alice: s0..s4 on webchat, t0..t1 on telegram; bob: one session.
    for i in 0..5 {
        store
            .create_session(&format!("s{i}"), "webchat", "alice", false)
            .await
            .unwrap();
        tick().await;
    }
    for i in 0..2 {
        store
            .create_session(&format!("t{i}"), "telegram", "alice", true)
            .await
            .unwrap();
        tick().await;
    }
    store
        .create_session("b0", "webchat", "bob", false)
        .await
        .unwrap();

    let ids = |page: &astrbot_core::store::SessionPage| -> Vec<String> {
        page.sessions.iter().map(|s| s.session_id.clone()).collect()
    };
    let all = store.list_sessions("alice", None, 1, 20).await.unwrap();
    assert_eq!(all.total, 7);
    assert_eq!(ids(&all), ["t1", "t0", "s4", "s3", "s2", "s1", "s0"]);

    let p1 = store
        .list_sessions("alice", Some("webchat"), 1, 2)
        .await
        .unwrap();
    let p2 = store
        .list_sessions("alice", Some("webchat"), 2, 2)
        .await
        .unwrap();
    let p3 = store
        .list_sessions("alice", Some("webchat"), 3, 2)
        .await
        .unwrap();
    let p4 = store
        .list_sessions("alice", Some("webchat"), 4, 2)
        .await
        .unwrap();
    assert_eq!((p1.total, p2.total, p3.total, p4.total), (5, 5, 5, 5));
    assert_eq!(ids(&p1), ["s4", "s3"]);
    assert_eq!(ids(&p2), ["s2", "s1"]);
    assert_eq!(ids(&p3), ["s0"]);
    assert!(p4.sessions.is_empty());

    // Page 0 reads as page 1; an empty platform filter is no filter.
    assert_eq!(
        ids(&store
            .list_sessions("alice", Some("webchat"), 0, 2)
            .await
            .unwrap()),
        ["s4", "s3"]
    );
    assert_eq!(
        store
            .list_sessions("alice", Some(""), 1, 1)
            .await
            .unwrap()
            .total,
        7
    );
    let telegram = store
        .list_sessions("alice", Some("telegram"), 1, 20)
        .await
        .unwrap();
    assert_eq!(
        (telegram.total, ids(&telegram)),
        (2, vec!["t1".to_owned(), "t0".to_owned()])
    );
    assert_eq!(
        store
            .list_sessions("carol", None, 1, 20)
            .await
            .unwrap()
            .total,
        0
    );

    // Renaming bumps a session to the top.
    store
        .set_session_display_name("s0", "renamed")
        .await
        .unwrap();
    let top = store.list_sessions("alice", None, 1, 1).await.unwrap();
    assert_eq!(ids(&top), ["s0"]);

    // Equal updated_at: the later-created session comes first, stably.
    exec(
        &store,
        "UPDATE platform_sessions SET updated_at = '2026-01-01 00:00:00.000000'",
        [],
    )
    .await;
    let p1 = store
        .list_sessions("alice", Some("webchat"), 1, 3)
        .await
        .unwrap();
    let p2 = store
        .list_sessions("alice", Some("webchat"), 2, 3)
        .await
        .unwrap();
    assert_eq!(ids(&p1), ["s4", "s3", "s2"]);
    assert_eq!(ids(&p2), ["s1", "s0"]);
}

#[tokio::test]
async fn project_sessions_are_excluded_from_listing() {
    let db = TempDb::new();
    let store = db.open().await;
    for id in ["free", "in-project", "orphaned"] {
        store
            .create_session(id, "webchat", "alice", false)
            .await
            .unwrap();
    }
    let ts = "'2026-01-01 00:00:00.000000'";
    exec(
        &store,
        &format!(
            "INSERT INTO chatui_projects (project_id, creator, title, created_at, updated_at) \
         VALUES ('p1', 'alice', 'Project', {ts}, {ts})"
        ),
        [],
    )
    .await;
    // "orphaned" points at a project that no longer exists: AstrBot's LEFT
    // JOIN keeps it visible.
    exec(
        &store,
        &format!(
        "INSERT INTO session_project_relations (session_id, project_id, created_at, updated_at) \
         VALUES ('in-project', 'p1', {ts}, {ts}), ('orphaned', 'gone', {ts}, {ts})"
    ),
        [],
    )
    .await;
    let page = store
        .list_sessions("alice", Some("webchat"), 1, 20)
        .await
        .unwrap();
    let mut ids: Vec<String> = page.sessions.into_iter().map(|s| s.session_id).collect();
    ids.sort();
    assert_eq!(ids, ["free", "orphaned"]);
    assert_eq!(page.total, 2);
    let any_platform = store.list_sessions("alice", None, 1, 1).await.unwrap();
    assert_eq!(any_platform.sessions.len(), 1);
    assert_eq!(any_platform.total, 2, "the count ignores the page size");
    let other_platform = store
        .list_sessions("alice", Some("telegram"), 1, 20)
        .await
        .unwrap();
    assert_eq!(other_platform.total, 0);
    // Still reachable directly.
    assert!(store.get_session("in-project").await.unwrap().is_some());
}

// ---- attachments ----------------------------------------------------------

#[tokio::test]
async fn attachments_round_trip() {
    let db = TempDb::new();
    let store = db.open().await;
    assert_eq!(store.get_attachment("a1").await.unwrap(), None);
    let created = store
        .create_attachment("a1", "/data/attachments/cat.png", "image", "image/png")
        .await
        .unwrap();
    assert_eq!(created.kind, "image");
    assert_eq!(store.get_attachment("a1").await.unwrap(), Some(created));
    let again = store
        .create_attachment("a1", "/x", "file", "text/plain")
        .await;
    assert!(matches!(again, Err(StoreError::Conflict(_))));
}

// ---- history --------------------------------------------------------------

fn history(platform_id: &str, user_id: &str, content: serde_json::Value) -> NewHistory {
    NewHistory {
        platform_id: platform_id.to_owned(),
        user_id: user_id.to_owned(),
        sender_id: Some("alice".to_owned()),
        sender_name: None,
        content,
    }
}

#[tokio::test]
async fn history_ids_increment_and_list_is_oldest_first() {
    let db = TempDb::new();
    let store = db.open().await;
    let user = json!({"type": "user", "message": [{"type": "plain", "text": "hi 你好"}]});
    let bot =
        json!({"type": "bot", "message": [{"type": "plain", "text": "hello"}], "reasoning": ""});
    let first = store
        .insert_history(history("webchat", "s1", user.clone()))
        .await
        .unwrap();
    let other = store
        .insert_history(history("webchat", "s2", user.clone()))
        .await
        .unwrap();
    let second = store
        .insert_history(history("webchat", "s1", bot.clone()))
        .await
        .unwrap();
    assert_eq!(other.id, first.id + 1);
    assert_eq!(second.id, first.id + 2);
    assert_eq!(first.content, user);
    assert_eq!(first.sender_id.as_deref(), Some("alice"));

    assert_eq!(
        store.get_history(second.id).await.unwrap(),
        Some(second.clone())
    );
    assert_eq!(store.get_history(9_999).await.unwrap(), None);
    let listed = store.list_history("webchat", "s1").await.unwrap();
    assert_eq!(listed, vec![first, second]);
    assert!(store
        .list_history("telegram", "s1")
        .await
        .unwrap()
        .is_empty());
}

// ---- conversations --------------------------------------------------------

#[tokio::test]
async fn a_selected_conversation_is_created_with_its_selection() {
    let db = TempDb::new();
    let store = db.open().await;
    let umo = "webchat:FriendMessage:webchat!alice!s1";
    let first = store
        .create_selected_conversation("webchat", umo, "sel_conv_id")
        .await
        .unwrap();
    let second = store
        .create_selected_conversation("webchat", umo, "sel_conv_id")
        .await
        .unwrap();

    let selected = store
        .get_preference("umo", umo, "sel_conv_id")
        .await
        .unwrap();
    assert_eq!(selected, Some(json!(second.conversation_id)));
    assert_eq!(
        store
            .get_conversation(&second.conversation_id)
            .await
            .unwrap(),
        Some(second)
    );
    // The one it replaced is kept.
    assert_eq!(
        store
            .get_conversation(&first.conversation_id)
            .await
            .unwrap(),
        Some(first)
    );
}

#[tokio::test]
async fn conversations_create_get_update() {
    let db = TempDb::new();
    let store = db.open().await;
    let umo = "webchat:FriendMessage:webchat!alice!s1";
    let created = store.create_conversation("webchat", umo).await.unwrap();
    let parsed = uuid::Uuid::parse_str(&created.conversation_id).unwrap();
    assert_eq!(parsed.get_version_num(), 4);
    assert_eq!(created.content, listed(json!([])));
    assert_eq!(
        (
            created.token_usage,
            created.title.clone(),
            created.persona_id.clone()
        ),
        (0, None, None)
    );
    assert_eq!(created.user_id, umo);
    assert_eq!(
        store
            .get_conversation(&created.conversation_id)
            .await
            .unwrap(),
        Some(created.clone())
    );
    assert_eq!(store.get_conversation("missing").await.unwrap(), None);

    let other = store.create_conversation("webchat", umo).await.unwrap();
    assert_ne!(other.conversation_id, created.conversation_id);

    tick().await;
    let messages = json!([
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "text", "text": "hello"}]}
    ]);
    store
        .update_conversation(&created.conversation_id, &messages, 42)
        .await
        .unwrap();
    let updated = store
        .get_conversation(&created.conversation_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(updated.content, listed(messages));
    assert_eq!(updated.token_usage, 42);
    assert_eq!(updated.created_at, created.created_at);
    assert!(updated.updated_at > created.updated_at);
    // The other conversation is untouched.
    assert_eq!(
        store
            .get_conversation(&other.conversation_id)
            .await
            .unwrap(),
        Some(other)
    );
}

// ---- preferences ----------------------------------------------------------

/// A new conversation of `umo`, made its current one.
async fn selected_conversation(store: &SqliteStore, umo: &str) -> ConversationRecord {
    let conversation = store.create_conversation("webchat", umo).await.unwrap();
    store
        .put_preference(
            "umo",
            umo,
            "sel_conv_id",
            &json!(conversation.conversation_id),
        )
        .await
        .unwrap();
    conversation
}

fn query<'a>(umo: &'a str, default_persona: &'a str) -> ChatStateQuery<'a> {
    ChatStateQuery {
        umo,
        provider_key: "provider_perf_chat_completion",
        conversation_key: "sel_conv_id",
        session_config_key: "session_service_config",
        default_persona,
    }
}

#[tokio::test]
async fn chat_state_reads_the_persona_as_astrbot_chooses_it() {
    let db = TempDb::new();
    let store = db.open().await;
    let umo = "webchat:FriendMessage:webchat!alice!s1";
    for (id, prompt, dialogs) in [
        ("pirate", "Talk like a pirate.", r#"["Ahoy?", "Arr!"]"#),
        ("sailor", "Talk like a sailor.", r#"["odd"]"#),
    ] {
        exec(
            &store,
            "INSERT INTO personas (persona_id, system_prompt, begin_dialogs, created_at, updated_at) \
             VALUES (?, ?, ?, '2026-01-01 00:00:00', '2026-01-01 00:00:00')",
            [id, prompt, dialogs],
        )
        .await;
    }
    let pirate = PersonaRecord {
        persona_id: "pirate".into(),
        system_prompt: "Talk like a pirate.".into(),
        begin_dialogs: vec!["Ahoy?".into(), "Arr!".into()],
    };

    // The config's default, read from the table.
    let read = store.get_chat_state(query(umo, "pirate")).await.unwrap();
    assert_eq!(read.persona_id.as_deref(), Some("pirate"));
    assert_eq!(read.stored_persona, Some(pirate.clone()));
    // A default the table does not hold.
    let read = store.get_chat_state(query(umo, "default")).await.unwrap();
    assert_eq!(
        (read.persona_id.as_deref(), read.stored_persona),
        (Some("default"), None)
    );

    // The conversation's persona wins over the default; "[%None]" there
    // means none at all.
    selected_conversation(&store, umo).await;
    exec(
        &store,
        "UPDATE conversations SET persona_id = '[%None]'",
        [],
    )
    .await;
    let read = store.get_chat_state(query(umo, "pirate")).await.unwrap();
    assert_eq!((read.persona_id, read.stored_persona), (None, None));
    exec(&store, "UPDATE conversations SET persona_id = 'pirate'", []).await;
    let read = store.get_chat_state(query(umo, "default")).await.unwrap();
    assert_eq!(read.stored_persona, Some(pirate));

    // The session's own setting wins over both; dialogs of odd length are
    // dropped, as AstrBot drops them.
    store
        .put_preference(
            "umo",
            umo,
            "session_service_config",
            &json!({"persona_id": "sailor"}),
        )
        .await
        .unwrap();
    let read = store.get_chat_state(query(umo, "default")).await.unwrap();
    let sailor = read.stored_persona.unwrap();
    assert_eq!(
        (sailor.persona_id.as_str(), sailor.begin_dialogs.len()),
        ("sailor", 0)
    );
}

#[tokio::test]
async fn chat_state_reads_the_provider_choice_and_the_selected_conversation() {
    let db = TempDb::new();
    let store = db.open().await;
    let umo = "webchat:FriendMessage:webchat!alice!s1";
    let state = |store: &SqliteStore| {
        let store = store.clone();
        async move { store.get_chat_state(query(umo, NO_PERSONA)).await.unwrap() }
    };
    assert_eq!(state(&store).await, ChatState::default(), "nothing stored");

    let conversation = selected_conversation(&store, umo).await;
    store
        .put_preference("umo", umo, "provider_perf_chat_completion", &json!("fast"))
        .await
        .unwrap();
    // Another session's choices are not this one's.
    store
        .put_preference(
            "umo",
            "webchat:FriendMessage:webchat!bob!s2",
            "provider_perf_chat_completion",
            &json!("slow"),
        )
        .await
        .unwrap();
    let read = state(&store).await;
    assert_eq!(read.provider_preference, Some(json!("fast")));
    assert_eq!(read.conversation, Some(conversation));

    // A selected id whose conversation is gone, or that is not a string,
    // is no conversation.
    store
        .put_preference("umo", umo, "sel_conv_id", &json!("no-such-conversation"))
        .await
        .unwrap();
    assert_eq!(state(&store).await.conversation, None);
    store
        .put_preference("umo", umo, "sel_conv_id", &json!(7))
        .await
        .unwrap();
    assert_eq!(state(&store).await.conversation, None);
}

#[tokio::test]
async fn preferences_upsert_get_delete() {
    let db = TempDb::new();
    let store = db.open().await;
    let umo = "webchat:FriendMessage:webchat!alice!s1";
    assert_eq!(
        store
            .get_preference("umo", umo, "sel_conv_id")
            .await
            .unwrap(),
        None
    );

    store
        .put_preference("umo", umo, "sel_conv_id", &json!("conv-1"))
        .await
        .unwrap();
    assert_eq!(
        store
            .get_preference("umo", umo, "sel_conv_id")
            .await
            .unwrap(),
        Some(json!("conv-1"))
    );
    let raw: String = scalar(
        &store,
        "SELECT value FROM preferences WHERE \"key\" = 'sel_conv_id'",
    )
    .await;
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&raw).unwrap(),
        json!({"val": "conv-1"})
    );

    store
        .put_preference("umo", umo, "sel_conv_id", &json!("conv-2"))
        .await
        .unwrap();
    assert_eq!(
        store
            .get_preference("umo", umo, "sel_conv_id")
            .await
            .unwrap(),
        Some(json!("conv-2"))
    );
    let rows: i64 = scalar(&store, "SELECT COUNT(*) FROM preferences").await;
    assert_eq!(rows, 1, "upsert keeps one row");

    // Scope, scope id and key together identify a value; null is a value.
    let mapping = json!({"default": {"name": "default", "path": "cmd_config.json"}});
    store
        .put_preference("global", "global", "abconf_mapping", &mapping)
        .await
        .unwrap();
    store
        .put_preference("umo", "other", "sel_conv_id", &serde_json::Value::Null)
        .await
        .unwrap();
    assert_eq!(
        store
            .get_preference("global", "global", "abconf_mapping")
            .await
            .unwrap(),
        Some(mapping)
    );
    assert_eq!(
        store
            .get_preference("umo", "other", "sel_conv_id")
            .await
            .unwrap(),
        Some(serde_json::Value::Null)
    );

    store
        .delete_preference("umo", umo, "sel_conv_id")
        .await
        .unwrap();
    assert_eq!(
        store
            .get_preference("umo", umo, "sel_conv_id")
            .await
            .unwrap(),
        None
    );
    assert!(store
        .get_preference("umo", "other", "sel_conv_id")
        .await
        .unwrap()
        .is_some());
    store
        .delete_preference("umo", umo, "sel_conv_id")
        .await
        .unwrap();

    exec(
        &store,
        "UPDATE preferences SET value = '[1]' WHERE scope_id = 'other'",
        [],
    )
    .await;
    let bad = store.get_preference("umo", "other", "sel_conv_id").await;
    assert!(matches!(bad, Err(StoreError::Corrupt(_))));
}

// ---- opening --------------------------------------------------------------

#[tokio::test]
async fn reopening_keeps_data_and_migrations_are_idempotent() {
    let db = TempDb::new();
    let store = db.open().await;
    let key = store.create_api_key(new_key("a", None)).await.unwrap();
    let session = store
        .create_session("s1", "webchat", "alice", false)
        .await
        .unwrap();
    store
        .put_preference("global", "global", "k", &json!([1, 2]))
        .await
        .unwrap();
    let mode: String = scalar(&store, "PRAGMA journal_mode").await;
    assert_eq!(mode, "wal");
    let fk: i64 = scalar(&store, "PRAGMA foreign_keys").await;
    assert_eq!(fk, 1);
    drop(store);

    let store = db.open().await;
    assert_eq!(store.get_api_key("a").await.unwrap(), Some(key));
    assert_eq!(store.get_session("s1").await.unwrap(), Some(session));
    assert_eq!(
        store.get_preference("global", "global", "k").await.unwrap(),
        Some(json!([1, 2]))
    );
    // A second store on the same file at the same time also works.
    let again = db.open().await;
    assert_eq!(again.list_api_keys().await.unwrap().len(), 1);
}

#[tokio::test]
async fn open_fails_cleanly_on_a_bad_path() {
    let db = TempDb::new();
    let missing_dir = db.dir.join("no-such-dir").join("x.db");
    let result = SqliteStore::open(&missing_dir).await;
    assert!(matches!(result, Err(StoreError::Backend(_))), "{result:?}");
}

#[tokio::test]
async fn opens_a_database_that_astrbot_created() {
    let db = TempDb::new();
    // AstrBot's own api_keys table: no lookup_hash, no migration bookkeeping.
    let astrbot = rusqlite::Connection::open(db.path()).unwrap();
    astrbot
        .execute_batch(
            "CREATE TABLE api_keys (inner_id INTEGER NOT NULL PRIMARY KEY, key_id VARCHAR(36) NOT NULL, \
             name VARCHAR(255) NOT NULL, key_hash VARCHAR(128) NOT NULL, key_prefix VARCHAR(24) NOT NULL, \
             scopes JSON, created_by VARCHAR(255) NOT NULL, last_used_at DATETIME, expires_at DATETIME, \
             revoked_at DATETIME, created_at DATETIME NOT NULL, updated_at DATETIME NOT NULL, \
             CONSTRAINT uix_api_key_id UNIQUE (key_id), CONSTRAINT uix_api_key_hash UNIQUE (key_hash)); \
             INSERT INTO api_keys (key_id, name, key_hash, key_prefix, scopes, created_by, created_at, \
             updated_at) VALUES ('old', 'old', 'pbkdf2-old', 'abk_', NULL, 'astrbot', \
             '2025-12-01 08:00:00.000000', '2025-12-01 08:00:00.000000');",
        )
        .unwrap();
    drop(astrbot);

    let store = db.open().await;
    assert_eq!(store.count_api_keys_without_lookup().await.unwrap(), 1);
    let now = astrbot_core::time::now();
    let old = store
        .find_active_api_key_by_hash("pbkdf2-old", now)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(old.scopes, None, "NULL scopes mean all scopes");
    store.set_api_key_lookup("old", "sha-old").await.unwrap();
    assert!(store
        .find_active_api_key_by_lookup("sha-old", now)
        .await
        .unwrap()
        .is_some());
    store.create_api_key(new_key("new", None)).await.unwrap();
    assert_eq!(store.list_api_keys().await.unwrap().len(), 2);
}

// ---- change stamps ----------------------------------------------------------

#[tokio::test]
async fn change_stamp_holds_still_without_writes_and_moves_on_every_commit() {
    let db = TempDb::new();
    let server = db.open().await;
    server.create_api_key(new_key("a", None)).await.unwrap();

    let before = server.change_stamp().expect("a WAL database has a stamp");
    server.list_api_keys().await.unwrap();
    server
        .find_active_api_key_by_lookup("sha-a", Utc::now())
        .await
        .unwrap();
    assert_eq!(server.change_stamp(), Some(before), "reads change nothing");

    // Another store on the same file stands for another process (the CLI):
    // its commit reaches this store through the shared WAL index.
    let cli = db.open().await;
    assert!(cli.revoke_api_key("a", Utc::now()).await.unwrap());
    let after_revoke = server.change_stamp().expect("still readable");
    assert_ne!(after_revoke, before, "another connection's commit shows");

    server.touch_api_key("a", Utc::now()).await.unwrap();
    let after_touch = server.change_stamp().expect("still readable");
    assert_ne!(after_touch, after_revoke, "this store's own commit shows");
}

#[tokio::test]
async fn change_stamp_recovers_when_the_wal_index_is_recreated() {
    let db = TempDb::new();
    let store = db.open().await;
    assert!(store.change_stamp().is_some());

    // What SQLite does when the last connection closes: the file goes, a
    // later connection makes a new one.
    let shm = db.dir.join("data_v4.db-shm");
    std::fs::remove_file(&shm).unwrap();
    std::fs::write(&shm, [0u8; 8]).unwrap();
    assert_eq!(
        store.change_stamp(),
        None,
        "an unlinked file is not trusted"
    );
    assert_eq!(store.change_stamp(), None, "a short header is not trusted");

    std::fs::write(&shm, [7u8; 128]).unwrap();
    assert!(store.change_stamp().is_some(), "the new file is followed");
}

#[tokio::test]
async fn a_symlinked_database_is_watched_where_sqlite_keeps_its_index() {
    let db = TempDb::new();
    let real = db.dir.join("elsewhere");
    std::fs::create_dir_all(&real).unwrap();
    let real_db = real.join("real.db");
    drop(SqliteStore::open(&real_db).await.unwrap());
    std::os::unix::fs::symlink(&real_db, db.path()).unwrap();
    // A leftover index beside the link must not be what is watched.
    std::fs::write(db.dir.join("data_v4.db-shm"), [9u8; 128]).unwrap();

    let store = db.open().await;
    store.create_api_key(new_key("a", None)).await.unwrap();
    let before = store.change_stamp().expect("the real index is readable");
    let cli = SqliteStore::open(&real_db).await.unwrap();
    assert!(cli.revoke_api_key("a", Utc::now()).await.unwrap());

    let after = store.change_stamp().expect("still readable");
    assert_ne!(
        after.shared, before.shared,
        "the other process's commit shows"
    );
}

#[tokio::test]
async fn own_writes_move_the_stamp_even_when_the_database_was_replaced() {
    let db = TempDb::new();
    let store = db.open().await;
    store.create_api_key(new_key("a", None)).await.unwrap();
    assert!(store.change_stamp().is_some());

    // The files are deleted under the running store and another process
    // creates a new database at the same path.
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", db.path().display()));
    }
    let other = db.open().await;
    other.create_api_key(new_key("b", None)).await.unwrap();

    assert_eq!(
        store.change_stamp(),
        None,
        "the new database's index is not ours"
    );
    assert_eq!(store.change_stamp(), None, "and stays untrusted");

    // With a readable index, this store's own writes always move the stamp.
    let fresh = TempDb::new();
    let store = fresh.open().await;
    let before = store.change_stamp().unwrap();
    store.touch_api_key("missing", Utc::now()).await.unwrap();
    let after = store.change_stamp().unwrap();
    assert_eq!(after.local_writes, before.local_writes + 1);
}

#[tokio::test]
async fn an_expiry_written_in_iso_form_by_another_tool_still_counts() {
    let db = TempDb::new();
    let store = db.open().await;
    store.create_api_key(new_key("a", None)).await.unwrap();
    let now = Utc::now();
    // `T` sorts after the space of our own format, so as text this past
    // instant compares as later than any same-day `now`.
    let past = (now - chrono::Duration::seconds(1))
        .format("%Y-%m-%dT%H:%M:%S%.6f")
        .to_string();
    exec(
        &store,
        "UPDATE api_keys SET expires_at = ? WHERE key_id = 'a'",
        [past],
    )
    .await;

    assert_eq!(
        store
            .find_active_api_key_by_lookup("sha-a", now)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store
            .find_active_api_key_by_hash("pbkdf2-a", now)
            .await
            .unwrap(),
        None
    );
}

// ---- migrations -------------------------------------------------------------

/// `_sqlx_migrations` as earlier builds (sqlx's migrator) wrote it for the
/// two migration files: version, description, SHA-384 of the file.
const SQLX_WRITTEN: [(i64, &str, &str); 2] = [
    (
        1,
        "astrbot tables",
        "96646D0E53C5C030B40A94002372ABA4B4C7B6C40FB89A2C855110A7D8FA061F1E2A5548833CE360CDC3BB29282E6422",
    ),
    (
        2,
        "api key lookup hash",
        "07D0F6BAEA50F8FE8696C9262E4C20BD82E9D657ADDBE57B660E7E154638043081C2D9C75D683792BC4AF1650F39516D",
    ),
];

/// The migrations added since, recorded the same way.
const ADDED_SINCE: [(i64, &str, &str); 1] = [(
    3,
    "personas",
    "E0A1DFA6AD38D52D1B114277BA86551E6AF5D48CCF5E46FE18BC7738C1F02862B84548C370850E08958EC722EB477926",
)];

fn migration_rows(path: &std::path::Path) -> Vec<(i64, String, String)> {
    let connection = rusqlite::Connection::open(path).unwrap();
    let mut statement = connection
        .prepare(
            "SELECT version, description, hex(checksum) FROM _sqlx_migrations ORDER BY version",
        )
        .unwrap();
    let rows = statement
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
        .unwrap();
    rows.map(Result::unwrap).collect()
}

#[tokio::test]
async fn migrations_are_recorded_as_earlier_builds_recorded_them() {
    let db = TempDb::new();
    drop(db.open().await);
    let expected: Vec<_> = SQLX_WRITTEN
        .iter()
        .chain(&ADDED_SINCE)
        .map(|&(v, d, c)| (v, d.to_owned(), c.to_owned()))
        .collect();
    assert_eq!(migration_rows(&db.path()), expected);
}

#[tokio::test]
async fn a_database_migrated_by_an_earlier_build_opens_unchanged() {
    let db = TempDb::new();
    let earlier = rusqlite::Connection::open(db.path()).unwrap();
    earlier
        .execute_batch(concat!(
            include_str!("../migrations/0001_astrbot_tables.sql"),
            include_str!("../migrations/0002_api_key_lookup_hash.sql"),
            "CREATE TABLE _sqlx_migrations (version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
             installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, success BOOLEAN NOT NULL, \
             checksum BLOB NOT NULL, execution_time BIGINT NOT NULL);",
        ))
        .unwrap();
    for (version, description, checksum) in SQLX_WRITTEN {
        earlier
            .execute(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
                 execution_time) VALUES (?, ?, TRUE, unhex(?), 1)",
                rusqlite::params![version, description, checksum],
            )
            .unwrap();
    }
    earlier
        .execute(
            "INSERT INTO platform_sessions (session_id, platform_id, creator, is_group, \
             created_at, updated_at) VALUES ('kept', 'webchat', 'alice', 0, \
             '2026-01-01 00:00:00.000000', '2026-01-01 00:00:00.000000')",
            [],
        )
        .unwrap();
    drop(earlier);

    let store = db.open().await;
    assert!(store.get_session("kept").await.unwrap().is_some());
    let rows = migration_rows(&db.path());
    let versions: Vec<i64> = rows.iter().map(|row| row.0).collect();
    assert_eq!(
        versions,
        [1, 2, 3],
        "nothing re-applied, the new one applied"
    );
    assert_eq!(
        scalar::<i64>(&store, "SELECT count(*) FROM personas").await,
        0,
        "the new table is there"
    );
}

#[tokio::test]
async fn a_changed_half_done_or_newer_migration_stops_the_open() {
    let cases = [
        (
            "UPDATE _sqlx_migrations SET checksum = x'00' WHERE version = 2",
            "applied with different content",
        ),
        (
            "UPDATE _sqlx_migrations SET success = FALSE WHERE version = 2",
            "left partly applied",
        ),
        (
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, \
             execution_time) VALUES (99, 'future', TRUE, x'00', 1)",
            "newer build",
        ),
    ];
    for (change, expected) in cases {
        let db = TempDb::new();
        let store = db.open().await;
        store
            .create_session("s", "webchat", "a", false)
            .await
            .unwrap();
        exec(&store, change, []).await;
        drop(store);

        match SqliteStore::open(&db.path()).await {
            Err(StoreError::Backend(message)) => {
                assert!(message.contains(expected), "{change}: {message}")
            }
            other => panic!("{change}: opened anyway: {other:?}"),
        }
    }
}

// ---- locks and checkpoints ----------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_waits_for_another_processs_lock_and_reads_do_not() {
    let db = TempDb::new();
    let store = db.open().await;
    store
        .create_session("before", "webchat", "a", false)
        .await
        .unwrap();

    // Another program (the CLI, a backup tool) holds the write lock.
    let other = rusqlite::Connection::open(db.path()).unwrap();
    other.execute_batch("BEGIN IMMEDIATE").unwrap();
    let holder = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        other.execute_batch("COMMIT").unwrap();
    });

    let started = std::time::Instant::now();
    assert!(store.get_session("before").await.unwrap().is_some());
    assert!(
        started.elapsed() < Duration::from_millis(200),
        "a read does not wait for the writer"
    );
    store
        .create_session("during", "webchat", "a", false)
        .await
        .unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "the write waited for the lock instead of failing"
    );
    holder.join().unwrap();
    assert!(store.get_session("during").await.unwrap().is_some());
}

/// `mxFrame` (frames in the WAL) and `nBackfill` (frames copied back into
/// the database) from the `-shm` file; see SQLite's WAL format.
fn wal_frames(db: &TempDb) -> (u32, u32) {
    let mut shm = db.path().into_os_string();
    shm.push("-shm");
    let bytes = std::fs::read(shm).unwrap();
    let word = |at: usize| u32::from_ne_bytes(bytes[at..at + 4].try_into().unwrap());
    (word(16), word(96))
}

#[tokio::test]
async fn the_wal_is_checkpointed_in_the_background() {
    let db = TempDb::new();
    let store = db.open().await;
    let autocheckpoint: i64 = scalar(&store, "PRAGMA wal_autocheckpoint").await;
    assert_eq!(autocheckpoint, 0, "commits never checkpoint themselves");

    for n in 0..300 {
        let value = json!("x".repeat(2_000));
        store
            .put_preference("umo", &format!("s{n}"), "k", &value)
            .await
            .unwrap();
    }
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (frames, copied) = wal_frames(&db);
        if frames > 0 && copied == frames {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "WAL not checkpointed: {copied} of {frames} frames copied"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_writes_all_land_and_a_duplicate_fails_alone() {
    let db = TempDb::new();
    let store = db.open().await;
    let mut writes = Vec::new();
    for n in 0..200 {
        let store = store.clone();
        // Session 7 is created twice.
        let id = if n == 199 {
            "s7".to_owned()
        } else {
            format!("s{n}")
        };
        writes.push(tokio::spawn(async move {
            store.create_session(&id, "webchat", "alice", false).await
        }));
    }
    let mut conflicts = 0;
    for write in writes {
        match write.await.unwrap() {
            Ok(_) => {}
            Err(StoreError::Conflict(_)) => conflicts += 1,
            Err(other) => panic!("{other}"),
        }
    }
    assert_eq!(conflicts, 1);
    let page = store.list_sessions("alice", None, 1, 500).await.unwrap();
    assert_eq!(page.total, 199);

    // What was committed is on disk for a new store too.
    drop(store);
    let reopened = db.open().await;
    assert_eq!(
        reopened
            .list_sessions("alice", None, 1, 1)
            .await
            .unwrap()
            .total,
        199
    );
}

/// Writes started together share a commit: each one lets the other ready
/// tasks queue theirs before taking the connection. One commit per write
/// would add at least one WAL frame per write.
#[tokio::test]
async fn writes_started_together_share_a_commit() {
    let db = TempDb::new();
    let store = db.open().await;
    store
        .create_session("first", "webchat", "alice", false)
        .await
        .unwrap();
    let (before, _) = wal_frames(&db);

    let writes: Vec<_> = (0..32)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                store
                    .create_session(&format!("s{n}"), "webchat", "alice", false)
                    .await
            })
        })
        .collect();
    for write in writes {
        write.await.unwrap().unwrap();
    }

    let (after, _) = wal_frames(&db);
    assert!(
        after - before < 16,
        "32 writes added {} WAL frames",
        after - before
    );
    let page = store.list_sessions("alice", None, 1, 100).await.unwrap();
    assert_eq!(page.total, 33);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_starts_over_under_steady_writes() {
    let db = TempDb::new();
    let store = db.open().await;
    let stop = std::time::Instant::now() + Duration::from_secs(2);
    let mut writers = Vec::new();
    for task in 0..4 {
        let store = store.clone();
        writers.push(tokio::spawn(async move {
            let mut writes = 0_u64;
            while std::time::Instant::now() < stop {
                writes += 1;
                let id = format!("t{task}-{}", writes % 500);
                store
                    .put_preference("umo", &id, "k", &json!("x".repeat(300)))
                    .await
                    .unwrap();
            }
            writes
        }));
    }
    let mut writes = 0;
    for writer in writers {
        writes += writer.await.unwrap();
    }
    let (frames, _) = wal_frames(&db);
    assert!(
        frames < 10_000,
        "the WAL kept growing: {frames} frames after {writes} writes"
    );
}

#[tokio::test]
async fn a_closed_store_leaves_everything_in_the_database_file() {
    let db = TempDb::new();
    let store = db.open().await;
    store.create_api_key(new_key("a", None)).await.unwrap();
    drop(store);

    // As a backup of the database file alone would see it, once the last
    // connection is closed (the checkpoint thread may be finishing a pass).
    let mut wal = db.path().into_os_string();
    wal.push("-wal");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while std::path::Path::new(&wal).exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the WAL was left behind"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let copy = db.dir.join("copy.db");
    std::fs::copy(db.path(), &copy).unwrap();
    let keys: i64 = rusqlite::Connection::open(&copy)
        .unwrap()
        .query_row("SELECT COUNT(*) FROM api_keys", [], |row| row.get(0))
        .unwrap();
    assert_eq!(keys, 1);
}

#[test]
fn two_processes_opening_a_new_database_at_once_both_succeed() {
    for _ in 0..20 {
        let db = TempDb::new();
        let start = std::sync::Arc::new(std::sync::Barrier::new(2));
        let openers: Vec<_> = (0..2)
            .map(|_| {
                let (path, start) = (db.path(), start.clone());
                std::thread::spawn(move || {
                    let runtime = tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap();
                    start.wait();
                    runtime.block_on(SqliteStore::open(&path)).map(drop)
                })
            })
            .collect();
        for opener in openers {
            opener.join().unwrap().unwrap();
        }
        assert_eq!(
            migration_rows(&db.path()).len(),
            SQLX_WRITTEN.len() + ADDED_SINCE.len()
        );
    }
}

#[tokio::test]
async fn an_answer_saves_its_turn_and_conversation_together_or_not_at_all() {
    let db = TempDb::new();
    let store = db.open().await;
    let conversation = store.create_conversation("webchat", "umo").await.unwrap();
    let update = |text: &str| ConversationUpdate {
        conversation_id: conversation.conversation_id.clone(),
        messages: raw_messages(json!([{"role": "assistant", "content": text}])),
        token_usage: 7,
    };

    let saved = store
        .save_answer(
            history("webchat", "s1", json!({"type": "bot"})),
            Some(update("one")),
        )
        .await
        .unwrap();
    assert_eq!(store.get_history(saved.id).await.unwrap(), Some(saved));
    let stored = store
        .get_conversation(&conversation.conversation_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        stored.content,
        listed(json!([{"role": "assistant", "content": "one"}]))
    );
    assert_eq!(stored.token_usage, 7);

    // A failed answer keeps the conversation as it was.
    store
        .save_answer(history("webchat", "s1", json!({"type": "bot"})), None)
        .await
        .unwrap();
    assert_eq!(store.list_history("webchat", "s1").await.unwrap().len(), 2);

    // When the conversation cannot be written, the turn is not kept either.
    exec(
        &store,
        "CREATE TRIGGER no_update BEFORE UPDATE ON conversations \
         BEGIN SELECT RAISE(ABORT, 'no'); END",
        [],
    )
    .await;
    let failed = store
        .save_answer(
            history("webchat", "s1", json!({"type": "bot"})),
            Some(update("two")),
        )
        .await;
    assert!(failed.is_err());
    assert_eq!(store.list_history("webchat", "s1").await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_history_row_a_trigger_skips_is_an_error_not_another_rows_id() {
    let db = TempDb::new();
    let store = db.open().await;
    let first = store
        .insert_history(history("webchat", "s1", json!({"type": "user"})))
        .await
        .unwrap();

    // Another tool sharing AstrBot's database may put triggers on its tables.
    exec(
        &store,
        "CREATE TRIGGER skip_history BEFORE INSERT ON platform_message_history \
         BEGIN SELECT RAISE(IGNORE); END",
        [],
    )
    .await;
    let skipped = store
        .insert_history(history("webchat", "s1", json!({"type": "bot"})))
        .await;

    assert!(skipped.is_err(), "{skipped:?}");
    assert_eq!(
        store.list_history("webchat", "s1").await.unwrap(),
        vec![first]
    );
}

#[cfg(unix)]
#[tokio::test]
async fn a_new_database_and_its_wal_are_readable_by_their_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let db = TempDb::new();
    let store = db.open().await;
    store.create_api_key(new_key("a", None)).await.unwrap();

    let wal = PathBuf::from(format!("{}-wal", db.path().display()));
    for file in [db.path(), wal] {
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", file.display());
    }
}

//! §5.6 and §5.3.2 step 4–6: the admin config-file endpoints
//! (`/api/config/*`), `GET /api/v1/configs`, and chat config routing with
//! `config_id` / `config_name`, which takes effect at once (no restart).

use astrbot_core::Store;
use astrbot_store::SqliteStore;
use fake_openai::{Behaviour, FakeOpenAi};
use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::*;

fn error(message: &str) -> Value {
    json!({"status": "error", "message": message, "data": null})
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}

/// Creates a config through `abconf/new` and returns its id.
async fn new_config(app: &TestApp, token: &str, name: &str, config: Value) -> String {
    let (status, body) = app
        .admin_post(
            token,
            "/api/config/abconf/new",
            json!({"name": name, "config": config}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok", "{body}");
    body["data"]["conf_id"].as_str().unwrap().to_owned()
}

async fn info_list(app: &TestApp, token: &str) -> Vec<Value> {
    let (status, body) = app.admin_get(token, "/api/config/abconfs").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok", "{body}");
    body["data"]["info_list"].as_array().unwrap().clone()
}

async fn open_configs(app: &TestApp, key: &str) -> Vec<Value> {
    let (status, body) = app.get("/api/v1/configs", Some(key)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok", "{body}");
    body["data"]["configs"].as_array().unwrap().clone()
}

/// A non-streaming chat; returns the whole stream.
async fn say(
    app: &TestApp,
    key: &str,
    username: &str,
    session_id: &str,
    extra: Value,
) -> SseStream {
    let mut body = json!({
        "message": "hi", "username": username, "session_id": session_id, "enable_streaming": false,
    });
    for (name, value) in extra.as_object().unwrap() {
        body[name] = value.clone();
    }
    app.chat(key, body).await
}

fn answered_requests(fake: &FakeOpenAi) -> usize {
    fake.requests()
        .into_iter()
        .filter(|request| !is_title_request(&request.body))
        .count()
}

async fn routes(app: &TestApp) -> Value {
    let store = SqliteStore::open(&app.data_dir().join("astrbot-rs.db"))
        .await
        .unwrap();
    store
        .get_preference("global", "global", "umop_config_routing")
        .await
        .unwrap()
        .unwrap_or_else(|| json!({}))
}

#[tokio::test]
async fn a_fresh_root_lists_only_the_default_config_with_its_absolute_path() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    let list = info_list(&app, &token).await;

    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["id"], "default");
    assert_eq!(list[0]["name"], "default");
    let path = std::path::PathBuf::from(list[0]["path"].as_str().unwrap());
    assert!(path.is_absolute(), "{}", path.display());
    assert_eq!(path, app.data_dir().join("cmd_config.json"));
}

#[tokio::test]
async fn a_created_config_is_listed_before_the_default() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    let (status, created) = app
        .admin_post(
            &token,
            "/api/config/abconf/new",
            json!({"name": "Alpha", "config": config_for(&app.fake)}),
        )
        .await;
    let second = new_config(&app, &token, "Beta", config_for(&app.fake)).await;
    let list = info_list(&app, &token).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(created["status"], "ok");
    assert_eq!(created["message"], "创建成功");
    let first = created["data"]["conf_id"].as_str().unwrap();
    let ids: Vec<&str> = list
        .iter()
        .map(|info| info["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [first, second.as_str(), "default"]);
    assert_eq!(list[0]["name"], "Alpha");
    assert_eq!(list[1]["name"], "Beta");
    assert_eq!(list[0]["path"], format!("abconf_{first}.json"));
    // AstrBot's key order: an extra's stored entry then its id; the
    // default's fixed entry.
    let keys = |info: &Value| {
        info.as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&list[0]), ["path", "name", "id"]);
    assert_eq!(keys(&list[2]), ["id", "name", "path"]);
    assert!(app
        .data_dir()
        .join("config")
        .join(format!("abconf_{first}.json"))
        .is_file());
}

#[tokio::test]
async fn creating_a_config_without_data_is_refused() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    let (_, empty) = app
        .admin_post(&token, "/api/config/abconf/new", json!({}))
        .await;
    let (status, not_json) = into_json(
        app.client
            .post(app.url("/api/config/abconf/new"))
            .bearer_auth(&token)
            .body("not json")
            .send()
            .await
            .unwrap(),
    )
    .await;
    let list = info_list(&app, &token).await;

    assert_eq!(empty, error("缺少配置数据"));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(not_json, error("Request body is not valid JSON"));
    assert_eq!(list.len(), 1);
}

#[tokio::test]
async fn a_config_document_is_read_back_by_id() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let mut config = config_for(&app.fake);
    config["provider_settings"]["default_personality"] = json!("marker-persona");
    let id = new_config(&app, &token, "Readable", config).await;

    let (status, body) = app
        .admin_get(&token, &format!("/api/config/abconf?id={id}"))
        .await;
    let (_, default) = app.admin_get(&token, "/api/config/abconf?id=default").await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["status"], "ok", "{body}");
    let document = &body["data"]["config"];
    assert_eq!(
        document["provider_settings"]["default_personality"],
        "marker-persona"
    );
    assert_eq!(document["provider"][0]["id"], "fake");
    assert_eq!(default["status"], "ok");
    assert_eq!(default["data"]["config"]["provider"][0]["id"], "fake");
}

#[tokio::test]
async fn the_admin_secrets_are_never_shown_and_a_save_of_what_was_shown_keeps_them() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let file = || -> Value {
        serde_json::from_slice(&std::fs::read(app.data_dir().join("cmd_config.json")).unwrap())
            .unwrap()
    };
    let stored = file()["dashboard"].clone();

    let mut shown = Vec::new();
    for query in ["id=default", "system_config=1"] {
        let (_, body) = app
            .admin_get(&token, &format!("/api/config/abconf?{query}"))
            .await;
        shown.push(body["data"]["config"].clone());
    }
    let (_, saved) = app
        .admin_post(
            &token,
            "/api/config/astrbot/update",
            json!({"conf_id": "default", "config": shown[0]}),
        )
        .await;

    for config in &shown {
        assert_eq!(config["dashboard"]["password"], "", "{config}");
        assert_eq!(config["dashboard"]["jwt_secret"], "", "{config}");
        assert_eq!(config["dashboard"]["username"], "astrbot");
        assert!(!config
            .to_string()
            .contains(stored["jwt_secret"].as_str().unwrap()));
    }
    assert_eq!(saved["status"], "ok", "{saved}");
    assert_eq!(file()["dashboard"]["password"], stored["password"]);
    assert_eq!(file()["dashboard"]["jwt_secret"], stored["jwt_secret"]);
    let (_, keys) = app.admin_get(&token, "/api/apikey/list").await;
    assert_eq!(keys["status"], "ok", "the token from before still works");
    app.admin_token().await;
}

#[tokio::test]
async fn reading_a_config_without_an_id_is_refused() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    let (_, missing) = app.admin_get(&token, "/api/config/abconf").await;
    let (_, empty) = app.admin_get(&token, "/api/config/abconf?id=").await;

    assert_eq!(missing, error("缺少配置文件 ID"));
    assert_eq!(empty, error("缺少配置文件 ID"));
}

#[tokio::test]
async fn a_config_is_renamed_everywhere() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let (key, _) = app.create_key(&["config"]).await;
    let id = new_config(&app, &token, "Before", config_for(&app.fake)).await;

    let (_, renamed) = app
        .admin_post(
            &token,
            "/api/config/abconf/update",
            json!({"id": id, "name": "After"}),
        )
        .await;
    let admin_list = info_list(&app, &token).await;
    let open_list = open_configs(&app, &key).await;

    assert_eq!(renamed["status"], "ok", "{renamed}");
    assert_eq!(admin_list[0]["name"], "After");
    assert_eq!(open_list[0]["id"], id.as_str());
    assert_eq!(open_list[0]["name"], "After");
}

#[tokio::test]
async fn renaming_and_deleting_answer_in_astrbots_words() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let id = new_config(&app, &token, "Kept", config_for(&app.fake)).await;
    let post = |path: &'static str, body: Value| {
        let (app, token) = (&app, &token);
        async move { app.admin_post(token, path, body).await.1 }
    };

    let default_renamed = post(
        "/api/config/abconf/update",
        json!({"id": "default", "name": "x"}),
    )
    .await;
    let default_deleted = post("/api/config/abconf/delete", json!({"id": "default"})).await;
    let unknown_renamed = post(
        "/api/config/abconf/update",
        json!({"id": "nope", "name": "x"}),
    )
    .await;
    let unknown_deleted = post("/api/config/abconf/delete", json!({"id": "nope"})).await;
    let unnamed = post("/api/config/abconf/update", json!({"id": id, "name": null})).await;

    assert_eq!(default_renamed, error("不能更新默认配置文件的信息"));
    assert_eq!(default_deleted, error("不能删除默认配置文件"));
    assert_eq!(unknown_renamed, error("更新失败"));
    assert_eq!(unknown_deleted, error("删除失败"));
    assert_eq!(unnamed["status"], "ok", "{unnamed}");
    assert_eq!(
        info_list(&app, &token).await[0]["name"],
        "Kept",
        "a rename without a name keeps it"
    );
}

#[tokio::test]
async fn a_deleted_config_disappears_with_its_file() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let (key, _) = app.create_key(&["config", "chat"]).await;
    let id = new_config(&app, &token, "Doomed", config_for(&app.fake)).await;
    let file = app
        .data_dir()
        .join("config")
        .join(format!("abconf_{id}.json"));
    let existed = file.is_file();

    let (_, deleted) = app
        .admin_post(&token, "/api/config/abconf/delete", json!({"id": id}))
        .await;
    let admin_list = info_list(&app, &token).await;
    let open_list = open_configs(&app, &key).await;
    let chat = say(
        &app,
        &key,
        &unique("u"),
        &unique("s"),
        json!({"config_id": id}),
    )
    .await;

    assert!(existed);
    assert_eq!(deleted["status"], "ok", "{deleted}");
    assert_eq!(admin_list.len(), 1);
    assert_eq!(open_list.len(), 1);
    assert!(!file.exists());
    assert_eq!(chat.events[0], error(&format!("config_id not found: {id}")));
}

#[tokio::test]
async fn saving_a_config_is_live() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let id = new_config(&app, &token, "Live", config_for(&app.fake)).await;
    let mut changed = config_for(&app.fake);
    changed["provider_settings"]["default_personality"] = json!("changed-persona");

    let (_, saved) = app
        .admin_post(
            &token,
            "/api/config/astrbot/update",
            json!({"conf_id": id, "config": changed}),
        )
        .await;
    let (_, read) = app
        .admin_get(&token, &format!("/api/config/abconf?id={id}"))
        .await;
    let on_disk: Value = serde_json::from_slice(
        &std::fs::read(
            app.data_dir()
                .join("config")
                .join(format!("abconf_{id}.json")),
        )
        .unwrap(),
    )
    .unwrap();

    assert_eq!(saved["status"], "ok", "{saved}");
    assert_eq!(
        read["data"]["config"]["provider_settings"]["default_personality"],
        "changed-persona"
    );
    assert_eq!(
        on_disk["provider_settings"]["default_personality"],
        "changed-persona"
    );
}

#[tokio::test]
async fn saving_the_default_config_keeps_providers_and_platforms() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let (key, _) = app.create_key(&["chat", "im"]).await;
    let (_, before) = app.admin_get(&token, "/api/config/abconf?id=default").await;
    let before = before["data"]["config"].clone();
    let mut incoming = before.clone();
    incoming["provider_sources"] = json!([]);
    incoming["provider"] = json!([]);
    incoming["platform"] = json!([{"id": "injected", "type": "telegram"}]);
    incoming["provider_settings"]["default_personality"] = json!("saved-default");

    let (_, saved) = app
        .admin_post(
            &token,
            "/api/config/astrbot/update",
            json!({"config": incoming}),
        )
        .await;
    let (_, after) = app.admin_get(&token, "/api/config/abconf?id=default").await;
    let after = after["data"]["config"].clone();
    let (_, bots) = app.get("/api/v1/im/bots", Some(&key)).await;
    let chat = say(&app, &key, &unique("u"), &unique("s"), json!({})).await;

    assert_eq!(saved["status"], "ok", "{saved}");
    assert_eq!(after["provider_sources"], before["provider_sources"]);
    assert_eq!(after["provider"], before["provider"]);
    assert_eq!(after["platform"], before["platform"]);
    assert_eq!(
        after["provider_settings"]["default_personality"],
        "saved-default"
    );
    assert_eq!(bots["data"]["bot_ids"], json!([]));
    assert_eq!(chat.text(), "Echo: hi", "{}", chat.raw);
    let on_disk: Value =
        serde_json::from_slice(&std::fs::read(app.data_dir().join("cmd_config.json")).unwrap())
            .unwrap();
    assert_eq!(on_disk["provider"], before["provider"]);
    assert_eq!(
        on_disk["provider_settings"]["default_personality"],
        "saved-default"
    );
}

#[tokio::test]
async fn the_open_config_list_has_extras_then_the_default() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let (key, _) = app.create_key(&["config"]).await;
    let alpha = new_config(&app, &token, "  Alpha  ", config_for(&app.fake)).await;
    let beta = new_config(&app, &token, "Beta", config_for(&app.fake)).await;

    let configs = open_configs(&app, &key).await;

    let ids: Vec<&str> = configs.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [alpha.as_str(), beta.as_str(), "default"]);
    for config in &configs {
        let keys: Vec<&String> = config.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["id", "name", "path", "is_default"]);
        assert!(config["id"].is_string());
        assert!(config["name"].is_string());
        assert!(config["path"].is_string());
        assert!(config["is_default"].is_boolean());
    }
    assert_eq!(configs[0]["name"], "Alpha");
    assert_eq!(configs[0]["is_default"], false);
    assert_eq!(configs[0]["path"], format!("abconf_{alpha}.json"));
    assert_eq!(configs[2]["name"], "default");
    assert_eq!(configs[2]["is_default"], true);
    assert!(std::path::Path::new(configs[2]["path"].as_str().unwrap()).is_absolute());
}

#[tokio::test]
async fn chat_config_errors_name_the_missing_or_ambiguous_config() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let (key, _) = app.create_key(&["chat"]).await;
    new_config(&app, &token, "Duplicated", config_for(&app.fake)).await;
    new_config(&app, &token, "Duplicated", config_for(&app.fake)).await;
    let user = unique("alice");

    let missing_id = say(
        &app,
        &key,
        &user,
        &unique("s"),
        json!({"config_id": "missing"}),
    )
    .await;
    let missing_name = say(
        &app,
        &key,
        &user,
        &unique("s"),
        json!({"config_name": "NotExists"}),
    )
    .await;
    let ambiguous = say(
        &app,
        &key,
        &user,
        &unique("s"),
        json!({"config_name": "Duplicated"}),
    )
    .await;

    assert_eq!(missing_id.events, [error("config_id not found: missing")]);
    assert_eq!(
        missing_name.events,
        [error("config_name not found: NotExists")]
    );
    assert_eq!(
        ambiguous.events,
        [error(
            "config_name is ambiguous, please use config_id: Duplicated"
        )]
    );
    assert_eq!(answered_requests(&app.fake), 0);
}

#[tokio::test]
async fn config_id_wins_over_config_name() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let (key, _) = app.create_key(&["chat"]).await;
    new_config(&app, &token, "Duplicated", config_for(&app.fake)).await;
    new_config(&app, &token, "Duplicated", config_for(&app.fake)).await;

    let stream = say(
        &app,
        &key,
        &unique("u"),
        &unique("s"),
        json!({"config_id": "default", "config_name": "Duplicated"}),
    )
    .await;

    assert_eq!(
        stream.types().first().map(String::as_str),
        Some("session_id"),
        "{}",
        stream.raw
    );
}

#[tokio::test]
async fn config_name_of_an_existing_config_binds_the_session() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let alpha = new_config(&app, &token, "Alpha", config_for(&app.fake)).await;
    let user = unique("alice");
    let session = unique("s");
    let umo = format!("webchat:FriendMessage:webchat!{user}!{session}");

    let bound = say(&app, &key, &user, &session, json!({"config_name": "Alpha"})).await;
    let routes_bound = routes(&app).await;
    let unbound = say(
        &app,
        &key,
        &user,
        &session,
        json!({"config_name": "default"}),
    )
    .await;
    let routes_unbound = routes(&app).await;

    assert_eq!(bound.status, StatusCode::OK);
    assert_eq!(
        bound.types().first().map(String::as_str),
        Some("session_id"),
        "{}",
        bound.raw
    );
    assert_eq!(bound.text(), "Echo: hi");
    assert_eq!(routes_bound[&umo], alpha.as_str(), "{routes_bound}");
    assert_eq!(
        unbound.types().first().map(String::as_str),
        Some("session_id"),
        "{}",
        unbound.raw
    );
    assert!(routes_unbound.get(&umo).is_none(), "{routes_unbound}");
}

#[tokio::test]
async fn a_new_config_answers_at_once_and_a_saved_change_applies_to_the_next_chat() {
    let app = spawn_app_with(
        Behaviour {
            text: Some("from-first".into()),
            ..Default::default()
        },
        |_| {},
    )
    .await;
    let second = FakeOpenAi::start(Behaviour {
        text: Some("from-second".into()),
        ..Default::default()
    })
    .await;
    let token = app.admin_token().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let id = new_config(&app, &token, "Second", config_for(&second)).await;
    let user = unique("user");
    let session = unique("s");

    let bound = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        say(&app, &key, &user, &session, json!({"config_id": id})),
    )
    .await
    .expect("a chat bound to a new config does not hang");
    let second_after_bound = answered_requests(&second);
    let first_after_bound = answered_requests(&app.fake);
    let (_, saved) = app
        .admin_post(
            &token,
            "/api/config/astrbot/update",
            json!({"conf_id": id, "config": config_for(&app.fake)}),
        )
        .await;
    let after_save = say(&app, &key, &user, &session, json!({})).await;

    assert_eq!(bound.status, StatusCode::OK);
    assert_eq!(bound.text(), "from-second", "{}", bound.raw);
    assert_eq!(second_after_bound, 1);
    assert_eq!(first_after_bound, 0);
    assert_eq!(saved["status"], "ok", "{saved}");
    assert_eq!(after_save.text(), "from-first", "{}", after_save.raw);
    assert_eq!(answered_requests(&second), 1);
    assert_eq!(answered_requests(&app.fake), 1);
}

#[tokio::test]
async fn a_binding_persists_until_config_id_default_removes_it() {
    let app = spawn_app_with(
        Behaviour {
            text: Some("from-first".into()),
            ..Default::default()
        },
        |_| {},
    )
    .await;
    let second = FakeOpenAi::start(Behaviour {
        text: Some("from-second".into()),
        ..Default::default()
    })
    .await;
    let token = app.admin_token().await;
    let (key, _) = app.create_key(&["chat"]).await;
    let id = new_config(&app, &token, "Second", config_for(&second)).await;
    let user = unique("user");
    let session = unique("s");

    let bound = say(&app, &key, &user, &session, json!({"config_id": id})).await;
    let still_bound = say(&app, &key, &user, &session, json!({})).await;
    let other_session = say(&app, &key, &user, &unique("other"), json!({})).await;
    let unbound = say(&app, &key, &user, &session, json!({"config_id": "default"})).await;
    let stays_unbound = say(&app, &key, &user, &session, json!({})).await;

    assert_eq!(bound.text(), "from-second", "{}", bound.raw);
    assert_eq!(still_bound.text(), "from-second", "{}", still_bound.raw);
    assert_eq!(other_session.text(), "from-first", "{}", other_session.raw);
    assert_eq!(unbound.text(), "from-first", "{}", unbound.raw);
    assert_eq!(stays_unbound.text(), "from-first", "{}", stays_unbound.raw);
    assert_eq!(answered_requests(&second), 2);
}

#[tokio::test]
async fn the_config_admin_endpoints_need_the_dashboard_token() {
    let app = spawn_app().await;
    let (key, _) = app.create_key(&["chat", "config", "file", "im"]).await;

    let (list_status, _) = app.get("/api/config/abconfs", Some(&key)).await;
    let (new_status, _) = app
        .post_json("/api/config/abconf/new", Some(&key), json!({"name": "x"}))
        .await;
    let (save_status, _) = app
        .post_json("/api/config/astrbot/update", None, json!({"config": {}}))
        .await;

    for status in [list_status, new_status, save_status] {
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
}

#[tokio::test]
async fn saving_a_non_object_dashboard_is_refused_and_logins_keep_working() {
    let app = spawn_app().await;
    let token = app.admin_token().await;

    let (_, answer) = app
        .admin_post(
            &token,
            "/api/config/astrbot/update",
            json!({"conf_id": "default", "config": {"dashboard": null}}),
        )
        .await;

    assert_eq!(answer["status"], "error");
    assert_eq!(answer["message"], "`dashboard` must be an object");
    let config: Value =
        serde_json::from_slice(&std::fs::read(app.data_dir().join("cmd_config.json")).unwrap())
            .unwrap();
    assert_eq!(
        config["dashboard"]["jwt_secret"].as_str().unwrap().len(),
        64
    );
    let (_, keys) = app.admin_get(&token, "/api/apikey/list").await;
    assert_eq!(keys["status"], "ok", "the old token still works");
}

#[tokio::test]
async fn an_admin_name_with_a_bang_is_refused_as_the_account_page_refuses_it() {
    // The dashboard's chat would refuse such an admin on every message.
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let saved_file = || std::fs::read(app.data_dir().join("cmd_config.json")).unwrap();
    let before = saved_file();

    let (_, answer) = app
        .admin_post(
            &token,
            "/api/config/astrbot/update",
            json!({"conf_id": "default", "config": {"dashboard": {"username": "boss!x"}}}),
        )
        .await;

    assert_eq!(answer["status"], "error", "{answer}");
    assert_eq!(
        answer["message"],
        "`dashboard.username` must not contain '!'"
    );
    assert_eq!(saved_file(), before, "nothing was saved");
    app.admin_token().await;
}

#[tokio::test]
async fn a_save_never_writes_over_an_edit_of_the_file_not_yet_loaded() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let path = app.data_dir().join("cmd_config.json");
    let loaded = std::fs::read(&path).unwrap();
    let mut edited: Value = serde_json::from_slice(&loaded).unwrap();
    edited["provider"][0]["model"] = json!("edited-by-hand");
    let edited = serde_json::to_vec_pretty(&edited).unwrap();
    std::fs::write(&path, &edited).unwrap();
    let save = json!({"conf_id": "default", "config": {"provider_settings": {"prompt_prefix": "P {{prompt}}"}}});

    let (_, refused) = app
        .admin_post(&token, "/api/config/astrbot/update", save.clone())
        .await;
    let (_, account) = app
        .admin_post(
            &token,
            "/api/auth/account/edit",
            json!({"password": "astrbot", "new_password": "another-one"}),
        )
        .await;

    for answer in [&refused, &account] {
        assert_eq!(answer["status"], "error", "{answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(
            message.contains("was edited since the server read it; send the server SIGHUP"),
            "{message}"
        );
    }
    assert_eq!(std::fs::read(&path).unwrap(), edited, "the edit is kept");
    app.admin_token().await;

    // The file as the server last wrote it saves as before.
    std::fs::write(&path, &loaded).unwrap();
    let (_, saved) = app
        .admin_post(&token, "/api/config/astrbot/update", save)
        .await;
    assert_eq!(saved["status"], "ok", "{saved}");
}

#[tokio::test]
async fn settings_of_the_wrong_kind_are_refused_instead_of_defaulted() {
    let app = spawn_app().await;
    let token = app.admin_token().await;
    let saved_file = || std::fs::read(app.data_dir().join("cmd_config.json")).unwrap();
    let before = saved_file();

    for (section, setting) in [
        ("astrbot_rs", json!({"max_upload_mb": 0.5})),
        ("astrbot_rs", json!({"max_upload_mb": "x"})),
        ("astrbot_rs", json!({"provider_timeout_seconds": 0})),
        ("dashboard", json!({"port": "abc"})),
        ("dashboard", json!({"port": 70_000})),
        ("dashboard", json!({"port": -1})),
    ] {
        let (_, answer) = app
            .admin_post(
                &token,
                "/api/config/astrbot/update",
                json!({"conf_id": "default", "config": {section: setting}}),
            )
            .await;

        let message = answer["message"].as_str().unwrap_or_default();
        assert_eq!(answer["status"], "error", "{setting}");
        assert!(message.contains("must be a whole number from"), "{message}");
    }
    assert_eq!(saved_file(), before, "nothing was saved");

    // Whole numbers as Python's int() takes them are fine.
    for setting in [
        json!({"max_upload_mb": 1}),
        json!({"max_upload_mb": "64"}),
        json!({"max_upload_mb": 128.0}),
    ] {
        let (_, answer) = app
            .admin_post(
                &token,
                "/api/config/astrbot/update",
                json!({"conf_id": "default", "config": {"astrbot_rs": setting}}),
            )
            .await;
        assert_eq!(answer["status"], "ok", "{setting}: {answer}");
    }

    // Another config's `dashboard` is never read, so it is not checked; its
    // provider timeout is read (for its own providers), so it is.
    let other = new_config(&app, &token, "other", json!({})).await;
    let mut answers = Vec::new();
    for config in [
        json!({"dashboard": {"port": "x"}}),
        json!({"astrbot_rs": {"provider_timeout_seconds": 0}}),
    ] {
        let body = json!({"conf_id": other, "config": config});
        answers.push(
            app.admin_post(&token, "/api/config/astrbot/update", body)
                .await
                .1,
        );
    }
    let (unread, read) = (&answers[0], &answers[1]);
    assert_eq!(unread["status"], "ok", "{unread}");
    assert_eq!(read["status"], "error", "{read}");
    let (_, created) = app
        .admin_post(
            &token,
            "/api/config/abconf/new",
            json!({"name": "x", "config": {"astrbot_rs": {"provider_timeout_seconds": "soon"}}}),
        )
        .await;
    assert_eq!(created["status"], "error", "{created}");
}

#[tokio::test]
async fn the_chat_page_is_told_which_config_a_new_chat_will_use() {
    // A route for every webchat session, as AstrBot's dashboard can set.
    let fake = FakeOpenAi::start(Behaviour::default()).await;
    let root = temp_root();
    let data = root.join("data");
    std::fs::write(data.join("cmd_config.json"), config_for(&fake).to_string()).unwrap();
    std::fs::create_dir_all(data.join("config")).unwrap();
    std::fs::write(data.join("config").join("abconf_wide.json"), "{}").unwrap();
    let store = SqliteStore::open(&data.join("astrbot-rs.db"))
        .await
        .unwrap();
    let mapping = json!({"wide": {"path": "abconf_wide.json", "name": "Wide"}});
    let routes = json!({"webchat:FriendMessage:*": "wide"});
    store
        .put_preference("global", "global", "abconf_mapping", &mapping)
        .await
        .unwrap();
    store
        .put_preference("global", "global", "umop_config_routing", &routes)
        .await
        .unwrap();
    drop(store);
    let app = start_server(root, fake).await;
    let token = app.admin_token().await;

    let (_, sessions) = app.admin_get(&token, "/api/chat/sessions").await;

    assert_eq!(sessions["status"], "ok", "{sessions}");
    assert_eq!(
        sessions["data"]["new_session_config_id"], "wide",
        "{sessions}"
    );
}

#[tokio::test]
async fn a_registered_config_whose_file_is_missing_stays_registered() {
    // AstrBot registered a config whose file is gone (a backup restored
    // without it, a file moved away for a while).
    let fake = FakeOpenAi::start(Behaviour::default()).await;
    let root = temp_root();
    std::fs::write(
        root.join("data").join("cmd_config.json"),
        config_for(&fake).to_string(),
    )
    .unwrap();
    let gone = json!({"path": "abconf_gone.json", "name": "Gone"});
    let store = SqliteStore::open(&root.join("data").join("astrbot-rs.db"))
        .await
        .unwrap();
    store
        .put_preference("global", "global", "abconf_mapping", &json!({"gone": gone}))
        .await
        .unwrap();
    drop(store);
    let app = start_server(root, fake).await;
    let token = app.admin_token().await;

    let ids: Vec<Value> = info_list(&app, &token)
        .await
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(ids, ["default"], "a config without its file is not offered");
    let alpha = new_config(&app, &token, "Alpha", config_for(&app.fake)).await;

    let store = SqliteStore::open(&app.data_dir().join("astrbot-rs.db"))
        .await
        .unwrap();
    let mapping = store
        .get_preference("global", "global", "abconf_mapping")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(mapping["gone"], gone, "{mapping}");
    assert_eq!(mapping[alpha.as_str()]["name"], "Alpha", "{mapping}");
}

//! A fake Telegram Bot API on 127.0.0.1: `/bot<token>/<method>` with JSON
//! or multipart bodies, answering `{"ok": true, "result": …}` or
//! Telegram's errors, with `getUpdates` long polling over queued updates.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use tokio::sync::Notify;

/// How long a test waits for the adapter to call.
pub const WAIT: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Shared {
    token: String,
    /// Queued updates; those below the last offset are confirmed and gone.
    updates: Mutex<VecDeque<Value>>,
    next_update: AtomicI64,
    queued: Notify,
    /// Every call: `(method, params)`; multipart files appear as
    /// `{"file_name", "content_type", "len"}`.
    calls: Mutex<Vec<(String, Value)>>,
    /// Methods made to fail: `method -> (error_code, description)`.
    failures: Mutex<HashMap<String, (u16, String)>>,
    /// Methods whose next call is refused with `429` and this `retry_after`.
    rate_limits: Mutex<HashMap<String, i64>>,
    next_message: AtomicI64,
    /// How long a file download takes before its bytes come.
    file_delay: Mutex<Duration>,
    /// Files whose path holds one of these names take longer.
    slow_names: Mutex<Vec<(String, Duration)>>,
}

pub struct FakeTelegram {
    shared: Arc<Shared>,
    pub port: u16,
}

impl FakeTelegram {
    pub async fn start(token: &str) -> Self {
        let shared = Arc::new(Shared {
            token: token.to_owned(),
            next_update: AtomicI64::new(100),
            next_message: AtomicI64::new(1000),
            ..Shared::default()
        });
        let app = Router::new()
            .route("/{bot}/{method}", post(method))
            .route("/file/{bot}/{*path}", get(file))
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        FakeTelegram { shared, port }
    }

    pub fn api_base(&self) -> String {
        format!("http://127.0.0.1:{}/bot", self.port)
    }

    pub fn file_base(&self) -> String {
        format!("http://127.0.0.1:{}/file/bot", self.port)
    }

    /// Makes every file download take `delay`.
    pub fn slow_files(&self, delay: Duration) {
        *self.shared.file_delay.lock().unwrap() = delay;
    }

    /// Makes the download of files whose path holds `name` take `delay`.
    pub fn slow_file(&self, name: &str, delay: Duration) {
        self.shared
            .slow_names
            .lock()
            .unwrap()
            .push((name.to_owned(), delay));
    }

    /// Queues a message update; returns its `update_id`.
    pub fn queue_message(&self, message: Value) -> i64 {
        let id = self.shared.next_update.fetch_add(1, Ordering::SeqCst);
        let update = json!({"update_id": id, "message": message});
        self.shared.updates.lock().unwrap().push_back(update);
        self.shared.queued.notify_waiters();
        id
    }

    pub fn fail(&self, method: &str, code: u16, description: &str) {
        self.shared
            .failures
            .lock()
            .unwrap()
            .insert(method.to_owned(), (code, description.to_owned()));
    }

    /// Refuses the next call of `method` as Telegram's flood control does,
    /// asking to retry after `seconds`.
    pub fn rate_limit_once(&self, method: &str, seconds: i64) {
        self.shared
            .rate_limits
            .lock()
            .unwrap()
            .insert(method.to_owned(), seconds);
    }

    pub fn recover(&self, method: &str) {
        self.shared.failures.lock().unwrap().remove(method);
    }

    pub fn calls(&self, method: &str) -> Vec<Value> {
        let calls = self.shared.calls.lock().unwrap();
        calls
            .iter()
            .filter(|(name, _)| name == method)
            .map(|(_, params)| params.clone())
            .collect()
    }

    /// Waits (bounded) until `method` was called `count` times.
    pub async fn wait_calls(&self, method: &str, count: usize) -> Vec<Value> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let calls = self.calls(method);
            if calls.len() >= count {
                return calls;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{method} called {} times, expected {count}",
                calls.len()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// The bytes the fake serves for a file: its path, after a JPEG's first
/// bytes, so that a test can tell which file was fetched.
pub fn file_bytes(path: &str) -> Vec<u8> {
    [b"\xff\xd8\xff".as_slice(), path.as_bytes()].concat()
}

/// `GET /file/bot<token>/<path>`, as Telegram serves what `getFile` names
/// (as `application/octet-stream`).
async fn file(
    State(shared): State<Arc<Shared>>,
    Path((bot, path)): Path<(String, String)>,
) -> Response {
    if bot != format!("bot{}", shared.token) {
        return error(404, "Not Found");
    }
    let slow = shared.slow_names.lock().unwrap().clone();
    let named = slow
        .into_iter()
        .find(|(name, _)| path.contains(name.as_str()));
    let delay = named.map_or_else(|| *shared.file_delay.lock().unwrap(), |(_, delay)| delay);
    tokio::time::sleep(delay).await;
    let mut response = file_bytes(&path).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/octet-stream"),
    );
    response
}

fn error(code: u16, description: &str) -> Response {
    let status = StatusCode::from_u16(code).unwrap();
    let body = json!({"ok": false, "error_code": code, "description": description});
    (status, Json(body)).into_response()
}

fn ok(result: Value) -> Response {
    Json(json!({"ok": true, "result": result})).into_response()
}

async fn params(request: Request) -> Value {
    let multipart = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| value.starts_with("multipart/form-data"));
    if multipart {
        let mut form = Multipart::from_request(request, &()).await.unwrap();
        let mut fields = Map::new();
        while let Some(field) = form.next_field().await.unwrap() {
            let name = field.name().unwrap_or_default().to_owned();
            let file_name = field.file_name().map(str::to_owned);
            let content_type = field.content_type().map(str::to_owned);
            let data = field.bytes().await.unwrap();
            let value = match file_name {
                Some(file_name) => json!({
                    "file_name": file_name, "content_type": content_type, "len": data.len(),
                }),
                None => Value::String(String::from_utf8(data.to_vec()).unwrap()),
            };
            fields.insert(name, value);
        }
        return Value::Object(fields);
    }
    let body = Bytes::from_request(request, &()).await.unwrap();
    if body.is_empty() {
        json!({})
    } else {
        serde_json::from_slice(&body).unwrap()
    }
}

async fn method(
    State(shared): State<Arc<Shared>>,
    Path((bot, method)): Path<(String, String)>,
    request: Request,
) -> Response {
    if bot.strip_prefix("bot") != Some(shared.token.as_str()) {
        return error(401, "Unauthorized");
    }
    let params = params(request).await;
    shared
        .calls
        .lock()
        .unwrap()
        .push((method.clone(), params.clone()));
    if let Some((code, description)) = shared.failures.lock().unwrap().get(&method) {
        return error(*code, description);
    }
    if let Some(seconds) = shared.rate_limits.lock().unwrap().remove(&method) {
        let body = json!({
            "ok": false, "error_code": 429,
            "description": format!("Too Many Requests: retry after {seconds}"),
            "parameters": {"retry_after": seconds},
        });
        return (StatusCode::TOO_MANY_REQUESTS, Json(body)).into_response();
    }
    match method.as_str() {
        "getMe" => ok(json!({
            "id": 4242, "is_bot": true, "first_name": "Astr", "username": "AstrTestBot",
            "can_join_groups": true, "can_read_all_group_messages": false,
            "supports_inline_queries": false,
        })),
        "deleteWebhook" | "setWebhook" => ok(json!(true)),
        "getUpdates" => ok(get_updates(&shared, &params).await),
        "getFile" => {
            let file_id = params["file_id"].as_str().unwrap_or_default();
            ok(json!({
                "file_id": file_id, "file_unique_id": "u", "file_size": 2048,
                "file_path": format!("photos/{file_id}.jpg"),
            }))
        }
        "sendMessage" | "sendPhoto" | "sendDocument" | "sendVoice" | "editMessageText" => {
            let message_id = match params.get("message_id") {
                Some(id) => id.as_i64().unwrap(),
                None => shared.next_message.fetch_add(1, Ordering::SeqCst),
            };
            let chat_id = match &params["chat_id"] {
                Value::String(text) => json!(text.parse::<i64>().unwrap()),
                other => other.clone(),
            };
            ok(json!({
                "message_id": message_id, "date": 1700000000,
                "chat": {"id": chat_id, "type": "supergroup"},
                "from": {"id": 4242, "is_bot": true, "first_name": "Astr"},
            }))
        }
        _ => error(404, "Not Found: method not found"),
    }
}

/// Confirms updates below `offset`, then answers with the pending ones
/// at once, or holds the request until one is queued or `timeout`
/// seconds pass (an empty list), as Telegram does.
async fn get_updates(shared: &Shared, params: &Value) -> Value {
    let offset = params["offset"].as_i64().unwrap_or(0);
    let timeout = Duration::from_secs(params["timeout"].as_u64().unwrap_or(0));
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let notified = shared.queued.notified();
        {
            let mut updates = shared.updates.lock().unwrap();
            updates.retain(|update| update["update_id"].as_i64().unwrap() >= offset);
            if !updates.is_empty() {
                return Value::Array(updates.iter().cloned().collect());
            }
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return json!([]);
        }
    }
}

//! A fake Slack: the Web API (`POST /api/{method}` with JSON or form
//! bodies, answered like Slack, recorded for the test), the pre-signed
//! upload URL, and a Socket Mode WebSocket server whose connections the
//! test plays by hand.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Map, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// How long a test waits for anything.
pub const WAIT: Duration = Duration::from_secs(10);

/// One request the adapter made.
#[derive(Debug, Clone)]
pub struct Call {
    pub method: String,
    pub authorization: Option<String>,
    /// The JSON body, or the form fields as a JSON object of strings.
    pub body: Value,
}

struct Shared {
    http_port: u16,
    ws_port: u16,
    answers: Mutex<HashMap<String, Value>>,
    /// Methods whose next call is refused with `429` and this `Retry-After`.
    rate_limits: Mutex<HashMap<String, u64>>,
    opens: AtomicUsize,
    calls: mpsc::UnboundedSender<Call>,
}

pub struct FakeSlack {
    shared: Arc<Shared>,
    calls: mpsc::UnboundedReceiver<Call>,
    sockets: mpsc::UnboundedReceiver<WebSocketStream<TcpStream>>,
}

impl FakeSlack {
    pub async fn start() -> FakeSlack {
        let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let ws = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let (calls_tx, calls) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            http_port: http.local_addr().unwrap().port(),
            ws_port: ws.local_addr().unwrap().port(),
            answers: Mutex::new(HashMap::new()),
            rate_limits: Mutex::new(HashMap::new()),
            opens: AtomicUsize::new(0),
            calls: calls_tx,
        });
        let app = Router::new()
            .route("/api/{method}", post(api))
            .route("/upload/{file}", post(upload))
            .route("/files-pri/{*path}", get(private_file))
            .with_state(shared.clone());
        tokio::spawn(async move { axum::serve(http, app).await });
        let (sockets_tx, sockets) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok((stream, _)) = ws.accept().await {
                if let Ok(socket) = tokio_tungstenite::accept_async(stream).await {
                    let _ = sockets_tx.send(socket);
                }
            }
        });
        FakeSlack {
            shared,
            calls,
            sockets,
        }
    }

    /// What `slack_api_base` should be.
    pub fn api_base(&self) -> String {
        format!("http://127.0.0.1:{}/api", self.shared.http_port)
    }

    /// A privately shared file's `url_private` on this fake.
    pub fn private_url(&self, name: &str) -> String {
        format!(
            "http://127.0.0.1:{}/files-pri/T1-F1/{name}",
            self.shared.http_port
        )
    }

    /// Makes `method` answer `answer` from now on.
    pub fn answer(&self, method: &str, answer: Value) {
        self.shared
            .answers
            .lock()
            .unwrap()
            .insert(method.to_owned(), answer);
    }

    /// Refuses the next call of `method` as Slack's rate limiter does,
    /// asking to retry after `seconds`.
    pub fn rate_limit_once(&self, method: &str, seconds: u64) {
        self.shared
            .rate_limits
            .lock()
            .unwrap()
            .insert(method.to_owned(), seconds);
    }

    /// The next call of `method`, skipping calls of other methods.
    pub async fn next_call(&mut self, method: &str) -> Call {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let call = tokio::time::timeout_at(deadline, self.calls.recv())
                .await
                .unwrap_or_else(|_| panic!("no {method} call within the wait"))
                .expect("fake stopped");
            if call.method == method {
                return call;
            }
        }
    }

    /// The next Socket Mode connection from the adapter.
    pub async fn next_socket(&mut self) -> SlackSocket {
        let socket = tokio::time::timeout(WAIT, self.sockets.recv())
            .await
            .expect("no Socket Mode connection within the wait")
            .expect("fake stopped");
        SlackSocket(socket)
    }
}

/// Slack's side of one Socket Mode connection.
pub struct SlackSocket(pub WebSocketStream<TcpStream>);

impl SlackSocket {
    pub async fn send(&mut self, value: Value) {
        self.0
            .send(Message::Text(value.to_string().into()))
            .await
            .unwrap();
    }

    /// The next JSON text frame (skipping pings and pongs).
    pub async fn next_json(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(WAIT, self.0.next())
                .await
                .expect("no frame within the wait")
                .expect("socket closed")
                .unwrap();
            if let Message::Text(text) = frame {
                return serde_json::from_str(text.as_str()).unwrap();
            }
        }
    }

    /// Reads until the adapter closes (answering its close frame).
    pub async fn drain(mut self) {
        let _ = tokio::time::timeout(WAIT, async {
            while let Some(Ok(_)) = self.0.next().await {}
        })
        .await;
    }
}

/// The bytes the fake serves for a private file: a PNG's first bytes and
/// the file's path, so that a test can tell which file was fetched.
pub fn private_file_bytes(path: &str) -> Vec<u8> {
    [b"\x89PNG".as_slice(), path.as_bytes()].concat()
}

/// `GET /files-pri/<path>`: only with a Bearer token, as Slack serves
/// `url_private`; recorded as a call of `files-pri`.
async fn private_file(
    State(shared): State<Arc<Shared>>,
    Path(path): Path<String>,
    headers: HeaderMap,
) -> Response {
    let authorization = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let _ = shared.calls.send(Call {
        method: "files-pri".into(),
        authorization: authorization.clone(),
        body: json!({"path": path}),
    });
    if authorization.is_none() {
        return (StatusCode::UNAUTHORIZED, "sign in").into_response();
    }
    ([("content-type", "image/png")], private_file_bytes(&path)).into_response()
}

async fn api(
    State(shared): State<Arc<Shared>>,
    Path(method): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let is_form = headers
        .get("content-type")
        .and_then(|value| value.to_str().ok())
        .is_some_and(|kind| kind.starts_with("application/x-www-form-urlencoded"));
    let parsed = if is_form {
        decode_form(&String::from_utf8_lossy(&body))
    } else {
        serde_json::from_slice(&body).unwrap_or(Value::Null)
    };
    let authorization = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let _ = shared.calls.send(Call {
        method: method.clone(),
        authorization,
        body: parsed.clone(),
    });
    if let Some(seconds) = shared.rate_limits.lock().unwrap().remove(&method) {
        let body = Json(json!({"ok": false, "error": "ratelimited"}));
        let retry_after = [("retry-after", seconds.to_string())];
        return (StatusCode::TOO_MANY_REQUESTS, retry_after, body).into_response();
    }
    if let Some(answer) = shared.answers.lock().unwrap().get(&method) {
        return Json(answer.clone()).into_response();
    }
    Json(match method.as_str() {
        "auth.test" => json!({"ok": true, "user_id": "UBOT", "bot_id": "B1", "team": "Fake"}),
        "apps.connections.open" => {
            let n = shared.opens.fetch_add(1, Ordering::SeqCst) + 1;
            json!({"ok": true, "url": format!("ws://127.0.0.1:{}/link/{n}", shared.ws_port)})
        }
        "users.info" => json!({"ok": true, "user": {
            "id": parsed["user"], "name": "alice", "real_name": "Alice Liddell",
            "profile": {"display_name": "Alice"},
        }}),
        "chat.postMessage" => {
            json!({"ok": true, "channel": parsed["channel"], "ts": "1700000099.000100"})
        }
        "files.getUploadURLExternal" => json!({
            "ok": true, "file_id": "F1",
            "upload_url": format!("http://127.0.0.1:{}/upload/F1", shared.http_port),
        }),
        _ => json!({"ok": true}),
    })
    .into_response()
}

async fn upload(
    State(shared): State<Arc<Shared>>,
    Path(file): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> &'static str {
    let authorization = headers
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .map(str::to_owned);
    let _ = shared.calls.send(Call {
        method: "upload".into(),
        authorization,
        body: json!({"file": file, "bytes": body.to_vec()}),
    });
    "OK - 4"
}

fn decode_form(text: &str) -> Value {
    let mut fields = Map::new();
    for pair in text.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        fields.insert(percent_decode(key), Value::String(percent_decode(value)));
    }
    Value::Object(fields)
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 3 <= bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

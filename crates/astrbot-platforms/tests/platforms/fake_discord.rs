//! A fake Discord: a gateway (WebSocket, JSON) the test drives frame by
//! frame, and a REST API (axum) that records requests and answers from a
//! script. Both on 127.0.0.1.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

/// How long the fake waits for the adapter.
pub const WAIT: Duration = Duration::from_secs(5);

pub const TOKEN: &str = "fake.bot.token";
pub const BOT_ID: &str = "42";

/// A gateway endpoint; each `accept` is one adapter connection.
pub struct FakeGateway {
    listener: TcpListener,
}

impl FakeGateway {
    pub async fn bind() -> Self {
        FakeGateway {
            listener: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        }
    }

    pub fn url(&self) -> String {
        format!("ws://{}", self.listener.local_addr().unwrap())
    }

    /// The next connection, with the path and query it asked for.
    pub async fn accept(&self) -> GatewayConn {
        let (stream, _) = tokio::time::timeout(WAIT, self.listener.accept())
            .await
            .expect("the adapter did not connect to the gateway")
            .unwrap();
        let mut uri = String::new();
        // The callback's shape (and its large error type) is tungstenite's.
        #[allow(clippy::result_large_err)]
        let record = |request: &Request, response: Response| -> Result<Response, ErrorResponse> {
            uri = request.uri().to_string();
            Ok(response)
        };
        let socket = tokio_tungstenite::accept_hdr_async(stream, record)
            .await
            .unwrap();
        GatewayConn { socket, uri }
    }
}

pub struct GatewayConn {
    socket: WebSocketStream<TcpStream>,
    pub uri: String,
}

impl GatewayConn {
    pub async fn send(&mut self, payload: Value) {
        self.socket
            .send(Message::Text(payload.to_string().into()))
            .await
            .unwrap();
    }

    pub async fn hello(&mut self, heartbeat_ms: u64) {
        self.send(
            json!({"op": 10, "d": {"heartbeat_interval": heartbeat_ms}, "s": null, "t": null}),
        )
        .await;
    }

    pub async fn dispatch(&mut self, seq: u64, kind: &str, data: Value) {
        self.send(json!({"op": 0, "s": seq, "t": kind, "d": data}))
            .await;
    }

    pub async fn ready(&mut self, seq: u64, session_id: &str, resume_url: &str) {
        self.dispatch(
            seq,
            "READY",
            json!({
                "v": 10, "session_id": session_id, "resume_gateway_url": resume_url,
                "user": {"id": BOT_ID, "username": "astrbot", "bot": true},
                "guilds": [], "application": {"id": BOT_ID},
            }),
        )
        .await;
    }

    /// The next payload, or `None` when the adapter closed the socket.
    pub async fn next(&mut self) -> Option<Value> {
        loop {
            let frame = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("nothing from the adapter within the wait");
            match frame {
                Some(Ok(Message::Text(text))) => {
                    return Some(serde_json::from_str(text.as_str()).unwrap())
                }
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next payload that is not a heartbeat; heartbeats are acked.
    pub async fn next_non_heartbeat(&mut self) -> Option<Value> {
        loop {
            let payload = self.next().await?;
            if payload["op"] == 1 {
                self.send(json!({"op": 11})).await;
                continue;
            }
            return Some(payload);
        }
    }

    /// The close frame the adapter sends (skipping anything before it);
    /// answers it and ends the connection.
    pub async fn close_code(mut self) -> Option<u16> {
        let code = loop {
            let frame = tokio::time::timeout(WAIT, self.socket.next())
                .await
                .expect("no close within the wait");
            match frame {
                Some(Ok(Message::Close(frame))) => break frame.map(|f| u16::from(f.code)),
                Some(Ok(_)) => {}
                None | Some(Err(_)) => return None,
            }
        };
        let drained = tokio::time::timeout(WAIT, async {
            while let Some(Ok(_)) = self.socket.next().await {}
        });
        drained
            .await
            .expect("the adapter kept the socket open after closing");
        code
    }

    pub async fn close(mut self, code: u16, reason: &str) {
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.to_owned().into(),
        };
        let _ = self.socket.close(Some(frame)).await;
        let _ = tokio::time::timeout(WAIT, async {
            while let Some(Ok(_)) = self.socket.next().await {}
        })
        .await;
    }
}

pub fn guild_message(seq_id: &str, content: &str, mentions: Value) -> Value {
    json!({
        "id": seq_id, "type": 0, "channel_id": "300", "guild_id": "200",
        "author": {"id": "7", "username": "alice", "global_name": "Alice", "avatar": null},
        "member": {"nick": null, "roles": []},
        "content": content, "mentions": mentions, "mention_roles": [],
        "mention_everyone": false, "attachments": [], "embeds": [],
        "timestamp": "2024-01-01T00:00:00.000000+00:00", "tts": false, "pinned": false,
    })
}

/// One request the REST fake received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub authorization: String,
    pub content_type: String,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Default)]
struct RestState {
    gateway_url: String,
    requests: Vec<Recorded>,
    /// Answers for message posts, in order; then 200 with a message.
    script: VecDeque<(u16, Value)>,
}

#[derive(Clone)]
pub struct FakeRest {
    state: Arc<Mutex<RestState>>,
    pub api_base: String,
}

impl FakeRest {
    pub async fn start(gateway_url: &str) -> Self {
        let state = Arc::new(Mutex::new(RestState {
            gateway_url: gateway_url.to_owned(),
            ..RestState::default()
        }));
        let app = Router::new()
            .route("/api/v10/gateway/bot", get(gateway_bot))
            .route("/api/v10/channels/{channel}/messages", post(create_message))
            .with_state(state.clone());
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let api_base = format!("http://{}/api/v10", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeRest { state, api_base }
    }

    /// The next message posts get these answers.
    pub fn script(&self, answers: impl IntoIterator<Item = (u16, Value)>) {
        self.state.lock().unwrap().script.extend(answers);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.state.lock().unwrap().requests.clone()
    }
}

fn record(state: &Mutex<RestState>, path: String, headers: &HeaderMap, body: &[u8]) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    state.lock().unwrap().requests.push(Recorded {
        path,
        authorization: header("authorization"),
        content_type: header("content-type"),
        body: body.to_vec(),
    });
}

async fn gateway_bot(
    State(state): State<Arc<Mutex<RestState>>>,
    headers: HeaderMap,
) -> impl IntoResponse {
    record(&state, "/gateway/bot".into(), &headers, b"");
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(&format!("Bot {TOKEN}")) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"message": "401: Unauthorized", "code": 0})),
        );
    }
    let url = state.lock().unwrap().gateway_url.clone();
    (
        StatusCode::OK,
        Json(
            json!({"url": url, "shards": 1, "session_start_limit": {"total": 1000, "remaining": 999, "reset_after": 0, "max_concurrency": 1}}),
        ),
    )
}

async fn create_message(
    State(state): State<Arc<Mutex<RestState>>>,
    Path(channel): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    record(
        &state,
        format!("/channels/{channel}/messages"),
        &headers,
        &body,
    );
    let scripted = state.lock().unwrap().script.pop_front();
    let (status, answer) = scripted.unwrap_or((200, json!({"id": "1000", "channel_id": channel})));
    (StatusCode::from_u16(status).unwrap(), Json(answer))
}

//! The chat half of `ceiling`: the least a chat gateway can do. It takes
//! `POST /api/v1/chat`, asks the provider for a streamed completion of the
//! message, and turns each chunk into AstrBot's `plain` event, then `end`;
//! no key, no session, no storage, no history. Measured in the same run as
//! astrbot-rs, it shows how much latency a gateway adds on this machine at
//! all, before any of the work a real one does.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::report::SseBuffer;
use crate::streams::{delta_text, upstream_request};

/// The provider the relay forwards to.
pub struct Relay {
    http: reqwest::Client,
    /// The provider's base URL, e.g. `http://127.0.0.1:9000/v1`.
    provider: String,
}

impl Relay {
    pub fn new(provider: &str) -> Arc<Relay> {
        // A provider that stops answering ends the relayed stream instead
        // of holding it open.
        let http = reqwest::Client::builder()
            .no_proxy()
            .connect_timeout(Duration::from_secs(10))
            .read_timeout(Duration::from_secs(60))
            .build()
            .expect("the HTTP client builds");
        Arc::new(Relay {
            http,
            provider: provider.trim_end_matches('/').to_owned(),
        })
    }
}

/// `POST /api/v1/chat`: the provider's answer as AstrBot's SSE events.
pub async fn chat(State(relay): State<Arc<Relay>>, Json(request): Json<Value>) -> Response {
    let body = upstream_request(&request["message"]);
    let upstream = relay
        .http
        .post(format!("{}/chat/completions", relay.provider))
        .json(&body)
        .send()
        .await;
    let upstream = match upstream {
        Ok(response) if response.status().is_success() => response,
        Ok(response) => {
            return (StatusCode::BAD_GATEWAY, response.status().to_string()).into_response()
        }
        Err(error) => return (StatusCode::BAD_GATEWAY, error.to_string()).into_response(),
    };
    let events = futures::stream::unfold(Some((upstream, SseBuffer::default())), relay_chunk);
    (
        [(header::CONTENT_TYPE, "text/event-stream")],
        Body::from_stream(events),
    )
        .into_response()
}

type RelayState = Option<(reqwest::Response, SseBuffer)>;

/// Turns the provider's next network chunk into the events it completes;
/// ends after `[DONE]` or when the provider stops.
async fn relay_chunk(state: RelayState) -> Option<(Result<Bytes, reqwest::Error>, RelayState)> {
    let (mut upstream, mut buffer) = state?;
    let chunk = match upstream.chunk().await {
        Ok(Some(chunk)) => chunk,
        Ok(None) => return None,
        Err(error) => return Some((Err(error), None)),
    };
    let mut data = Vec::new();
    buffer.push(&chunk, &mut data);
    let mut out = String::new();
    for data in data {
        if data.trim() == "[DONE]" {
            out.push_str(&event(
                json!({"type": "end", "data": "", "streaming": false}),
            ));
            return Some((Ok(Bytes::from(out)), None));
        }
        let chunk: Value = serde_json::from_str(&data).unwrap_or_default();
        if let Some(text) = delta_text(&chunk) {
            let plain =
                json!({"type": "plain", "data": text, "streaming": true, "chain_type": null});
            out.push_str(&event(plain));
        }
    }
    Some((Ok(Bytes::from(out)), Some((upstream, buffer))))
}

fn event(value: Value) -> String {
    format!("data: {value}\n\n")
}

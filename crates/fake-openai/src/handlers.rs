//! HTTP routes: `POST /v1/chat/completions` (streaming and not) and
//! `GET /v1/models`, with the failure modes of `Behaviour`.

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;

use crate::answer;
use crate::behaviour::Behaviour;
use crate::server::{until_shutdown, RecordedRequest, Shared};
use crate::wire::{self, AnswerMeta};

pub(crate) fn router(shared: Shared) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .fallback(not_found)
        .with_state(shared)
}

/// Numbers the answers so that ids differ.
static ANSWER_COUNTER: AtomicU64 = AtomicU64::new(1);

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

fn error_response(status: StatusCode, message: &str, kind: &str, code: Option<&str>) -> Response {
    (status, Json(wire::error(message, kind, code))).into_response()
}

async fn not_found() -> Response {
    error_response(
        StatusCode::NOT_FOUND,
        "Unknown route",
        "invalid_request_error",
        None,
    )
}

/// The 401/429 answer for a rejected or rate-limited key, if any. The key
/// itself is never echoed back.
fn key_failure(behaviour: &Behaviour, headers: &HeaderMap) -> Option<Response> {
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))?;
    if behaviour.reject_keys.iter().any(|rejected| rejected == key) {
        return Some(error_response(
            StatusCode::UNAUTHORIZED,
            "Incorrect API key provided.",
            "invalid_request_error",
            Some("invalid_api_key"),
        ));
    }
    if behaviour
        .rate_limited_keys
        .iter()
        .any(|limited| limited == key)
    {
        return Some(error_response(
            StatusCode::TOO_MANY_REQUESTS,
            "Rate limit reached for requests.",
            "requests",
            Some("rate_limit_exceeded"),
        ));
    }
    None
}

async fn models(State(shared): State<Shared>, headers: HeaderMap) -> Response {
    let behaviour = shared.behaviour();
    if let Some(failure) = key_failure(&behaviour, &headers) {
        return failure;
    }
    Json(wire::models(&behaviour.models, unix_now())).into_response()
}

async fn chat_completions(
    State(shared): State<Shared>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let parsed: Option<Value> = serde_json::from_slice(&raw).ok();
    shared.record(RecordedRequest {
        body: parsed
            .clone()
            .unwrap_or_else(|| Value::String(String::from_utf8_lossy(&raw).into_owned())),
        authorization: headers
            .get(header::AUTHORIZATION)
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned),
        headers: headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
    });

    let behaviour = shared.behaviour();
    if let Some(failure) = key_failure(&behaviour, &headers) {
        return failure;
    }
    let Some(body) = parsed.filter(|body| body.get("messages").is_some_and(Value::is_array)) else {
        return error_response(
            StatusCode::BAD_REQUEST,
            "The body must be JSON with a `messages` array.",
            "invalid_request_error",
            None,
        );
    };
    if let Some(status) = behaviour.fail_status {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return error_response(
            status,
            "The server had an error while processing your request.",
            "server_error",
            None,
        );
    }
    if behaviour.hang_before_answer {
        until_shutdown(shared.shutdown.clone()).await;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }

    let plan = Plan::new(&behaviour, &body);
    if body.get("stream").and_then(Value::as_bool) == Some(true) {
        stream_answer(plan, &body, &shared)
    } else {
        whole_answer(plan, &shared).await
    }
}

/// Everything needed to send one answer, worked out up front.
struct Plan {
    meta: AnswerMeta,
    text: String,
    deltas: Vec<String>,
    reasoning: Option<String>,
    usage: Value,
    first_token_delay: Duration,
    token_delay: Duration,
    hang_after_chunks: Option<usize>,
    /// Pad each streamed chunk, as OpenAI does (see `Behaviour`).
    obfuscate: bool,
}

impl Plan {
    fn new(behaviour: &Behaviour, body: &Value) -> Plan {
        let text = answer::answer_text(behaviour, body);
        let deltas = answer::split_deltas(&text, behaviour.chunks);
        // With a fixed chunk count the text may have been repeated; the
        // non-streaming answer must say the same as the stream would.
        let text = deltas.concat();
        let (prompt, cached, completion) = answer::usage_numbers(behaviour, body, deltas.len());
        let model = body
            .get("model")
            .and_then(Value::as_str)
            .unwrap_or("fake-model")
            .to_owned();
        Plan {
            meta: AnswerMeta {
                id: format!(
                    "chatcmpl-fake-{}",
                    ANSWER_COUNTER.fetch_add(1, Ordering::Relaxed)
                ),
                created: unix_now(),
                model,
            },
            text,
            deltas,
            reasoning: behaviour.reasoning.clone(),
            usage: wire::usage(prompt, cached, completion),
            first_token_delay: behaviour.first_token_delay,
            token_delay: behaviour.token_delay,
            hang_after_chunks: behaviour.hang_after_chunks,
            obfuscate: behaviour.obfuscation
                && body
                    .pointer("/stream_options/include_obfuscation")
                    .and_then(Value::as_bool)
                    != Some(false),
        }
    }
}

async fn whole_answer(plan: Plan, shared: &Shared) -> Response {
    if plan.hang_after_chunks.is_some() {
        until_shutdown(shared.shutdown.clone()).await;
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let gaps = plan.deltas.len().saturating_sub(1) as u32;
    let delay = plan.first_token_delay + plan.token_delay * gaps;
    tokio::select! {
        _ = tokio::time::sleep(delay) => {}
        _ = until_shutdown(shared.shutdown.clone()) => {
            return StatusCode::SERVICE_UNAVAILABLE.into_response();
        }
    }
    Json(wire::completion(
        &plan.meta,
        &plan.text,
        plan.reasoning.as_deref(),
        plan.usage,
    ))
    .into_response()
}

fn stream_answer(plan: Plan, body: &Value, shared: &Shared) -> Response {
    let include_usage = body
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);
    let (sender, receiver) = mpsc::channel::<Bytes>(16);
    let shutdown = shared.shutdown.clone();
    tokio::spawn(async move {
        // Shutdown ends the stream early; a client that went away makes
        // `send` fail, which ends it too.
        tokio::select! {
            _ = produce_stream(plan, include_usage, &sender, shutdown.clone()) => {}
            _ = until_shutdown(shutdown) => {}
        }
    });
    let body = Body::from_stream(ReceiverStream::new(receiver).map(Ok::<_, Infallible>));
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, "text/event-stream")
        .header(header::CACHE_CONTROL, "no-cache")
        .body(body)
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

/// Waits until `due`, or not at all when it has passed: tokio's timer
/// rounds deadlines up to the next millisecond, which would add up to a
/// millisecond to an answer meant to be instant.
async fn pace(due: Instant) {
    if due > Instant::now() {
        tokio::time::sleep_until(due).await;
    }
}

/// Sends the SSE events of one answer, paced against a fixed schedule so
/// that slow sends do not add up: delta `i` is due at
/// `first_token_delay + i * token_delay` after the start.
async fn produce_stream(
    plan: Plan,
    include_usage: bool,
    sender: &mpsc::Sender<Bytes>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let start = Instant::now();
    let mut padding = wire::Padding::new(plan.obfuscate);
    let mut send = |mut value: Value| {
        padding.pad(&mut value);
        let event = wire::sse_event(&value.to_string());
        async move { sender.send(event).await.is_ok() }
    };
    let meta = &plan.meta;
    let mut due = start + plan.first_token_delay;
    pace(due).await;

    let role = json!({"role": "assistant", "content": ""});
    if !send(wire::chunk(meta, role, None, include_usage)).await {
        return;
    }
    let reasoning = plan
        .reasoning
        .as_deref()
        .map(answer::split_words)
        .unwrap_or_default();
    let mut sent_any = false;
    for piece in reasoning {
        if sent_any {
            due += plan.token_delay;
            pace(due).await;
        }
        let delta = json!({"reasoning_content": piece});
        if !send(wire::chunk(meta, delta, None, include_usage)).await {
            return;
        }
        sent_any = true;
    }
    for (index, piece) in plan.deltas.iter().enumerate() {
        if plan.hang_after_chunks == Some(index) {
            until_shutdown(shutdown).await;
            return;
        }
        if sent_any {
            due += plan.token_delay;
            pace(due).await;
        }
        let delta = json!({"content": piece});
        if !send(wire::chunk(meta, delta, None, include_usage)).await {
            return;
        }
        sent_any = true;
    }
    if plan
        .hang_after_chunks
        .is_some_and(|after| after >= plan.deltas.len())
    {
        until_shutdown(shutdown).await;
        return;
    }
    if !send(wire::chunk(meta, json!({}), Some("stop"), include_usage)).await {
        return;
    }
    if include_usage && !send(wire::usage_chunk(meta, plan.usage.clone())).await {
        return;
    }
    let _ = sender.send(wire::sse_event("[DONE]")).await;
}

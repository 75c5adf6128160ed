//! `chat` and `upstream`: N clients each sending M streamed chat messages,
//! through the gateway (`POST /api/v1/chat`, AstrBot's SSE events) or
//! straight at an OpenAI-compatible provider, reading every event to the
//! end and checking the text. `hold` reuses [`gateway_stream`].

use std::time::Instant;

use serde_json::{json, Value};

use crate::hold::OpenStreams;
use crate::report::{failure, print_summary, RunClock, Sample, SseBuffer, Tally};
use crate::{client, join_all, message_for, Common, Workload};

#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// `POST /api/v1/chat` (AstrBot's SSE events), optionally naming the
    /// provider (`selected_provider`).
    Gateway { provider: Option<String> },
    /// OpenAI-compatible `POST /chat/completions` with `stream: true`.
    Upstream,
}

/// What one stream produced.
pub struct StreamResult {
    pub sample: Sample,
    pub text: String,
    pub session_id: Option<String>,
}

/// One chat turn sent to the gateway.
pub struct ChatRequest<'a> {
    pub base: &'a str,
    pub key: &'a str,
    pub username: &'a str,
    pub message: &'a str,
    /// The session to continue; none opens a new one.
    pub session: Option<&'a str>,
    /// Sent as `selected_provider`.
    pub provider: Option<&'a str>,
}

pub async fn run_streams(common: &Common, workload: &Workload, target: Target) -> bool {
    let http = client(common);
    let clock = RunClock::start();
    let started = tokio::time::Instant::now();
    let pacing = workload.pacing();
    let mut tasks = Vec::new();
    for client_index in 0..workload.concurrency.max(1) {
        let http = http.clone();
        let base = common.base();
        let key = common.key.clone();
        let target = target.clone();
        let messages = workload.messages;
        let session_messages = workload.session_messages;
        let expect = workload.expect.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut session: Option<String> = None;
            let username = format!("bench-{client_index}");
            for n in 0..messages {
                if session_messages > 0 && n % session_messages == 0 {
                    session = None;
                }
                if let Some(slot) = pacing.slot(client_index, n) {
                    tokio::time::sleep_until(started + slot).await;
                }
                let message = message_for(client_index, n);
                let expected = expect.for_message(&message);
                let result = match &target {
                    Target::Gateway { provider } => {
                        let request = ChatRequest {
                            base: &base,
                            key: &key,
                            username: &username,
                            message: &message,
                            session: session.as_deref(),
                            provider: provider.as_deref(),
                        };
                        gateway_stream(&http, &request, None).await
                    }
                    Target::Upstream => upstream_stream(&http, &base, &key, &message).await,
                };
                match result {
                    Ok(result) if result.text == expected => {
                        if result.session_id.is_some() {
                            session = result.session_id;
                        }
                        tally.ok(result.sample);
                    }
                    Ok(result) => tally.error(format!(
                        "wrong text: got {:?}, expected {expected:?}",
                        result.text
                    )),
                    Err(error) => tally.error(error),
                }
            }
            tally
        }));
    }
    let tally = join_all(tasks).await;
    let measured = clock.stop();
    let (mode, provider) = match &target {
        Target::Gateway { provider } => ("chat", provider.clone()),
        Target::Upstream => ("upstream", None),
    };
    print_summary(
        mode,
        workload.concurrency,
        &measured,
        &tally,
        json!({"messages": workload.messages, "provider": provider, "rate": workload.rate}),
    );
    tally.errors > 0
}

/// One `POST /api/v1/chat` stream, read to `end`. `open` is bumped once
/// the response headers arrived and dropped when the stream is over.
pub async fn gateway_stream(
    http: &reqwest::Client,
    request: &ChatRequest<'_>,
    open: Option<&OpenStreams>,
) -> Result<StreamResult, String> {
    let mut body = json!({
        "message": request.message,
        "username": request.username,
        "enable_streaming": true,
    });
    if let Some(session) = request.session {
        body["session_id"] = json!(session);
    }
    if let Some(provider) = request.provider {
        body["selected_provider"] = json!(provider);
    }
    let begun = Instant::now();
    let mut response = http
        .post(format!("{}/api/v1/chat", request.base))
        .bearer_auth(request.key)
        .json(&body)
        .send()
        .await
        .map_err(|e| failure("request", &e))?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(format!("HTTP {}", response.status()));
    }
    let _guard = open.map(OpenStreams::enter);
    let mut sample = Sample::default();
    let mut text = String::new();
    let mut session_id = None;
    let mut buffer = SseBuffer::default();
    let mut events = Vec::new();
    loop {
        let chunk = response
            .chunk()
            .await
            .map_err(|e| failure("stream", &e))?
            .ok_or_else(|| "stream closed before `end`".to_owned())?;
        buffer.push(&chunk, &mut events);
        for data in events.drain(..) {
            let event: Value =
                serde_json::from_str(&data).map_err(|e| format!("event not JSON: {e}"))?;
            sample.first_event.get_or_insert_with(|| begun.elapsed());
            match event["type"].as_str() {
                Some("session_id") => {
                    session_id = event["session_id"].as_str().map(str::to_owned);
                }
                Some("plain") if event["chain_type"].is_null() => {
                    if let Some(delta) = event["data"].as_str().filter(|d| !d.is_empty()) {
                        sample.first_text.get_or_insert_with(|| begun.elapsed());
                        text.push_str(delta);
                    }
                }
                Some("end") => {
                    sample.total = begun.elapsed();
                    return Ok(StreamResult {
                        sample,
                        text,
                        session_id,
                    });
                }
                _ => {}
            }
        }
    }
}

/// The streamed chat-completions request for one user message, as both
/// `upstream` and the relay send it.
pub fn upstream_request(message: &Value) -> Value {
    json!({
        "model": "fake-model",
        "stream": true,
        "messages": [{"role": "user", "content": message}],
    })
}

/// The text delta of a chat-completions chunk, if it has one.
pub fn delta_text(chunk: &Value) -> Option<&str> {
    chunk["choices"][0]["delta"]["content"].as_str()
}

/// One OpenAI-style streamed completion, read to `data: [DONE]`.
async fn upstream_stream(
    http: &reqwest::Client,
    base: &str,
    key: &str,
    message: &str,
) -> Result<StreamResult, String> {
    let body = upstream_request(&json!(message));
    let begun = Instant::now();
    let mut response = http
        .post(format!("{base}/chat/completions"))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .map_err(|e| failure("request", &e))?;
    if response.status() != reqwest::StatusCode::OK {
        return Err(format!("HTTP {}", response.status()));
    }
    let mut sample = Sample::default();
    let mut text = String::new();
    let mut buffer = SseBuffer::default();
    let mut events = Vec::new();
    loop {
        let chunk = response
            .chunk()
            .await
            .map_err(|e| failure("stream", &e))?
            .ok_or_else(|| "stream closed before [DONE]".to_owned())?;
        buffer.push(&chunk, &mut events);
        for data in events.drain(..) {
            sample.first_event.get_or_insert_with(|| begun.elapsed());
            if data.trim() == "[DONE]" {
                sample.total = begun.elapsed();
                return Ok(StreamResult {
                    sample,
                    text,
                    session_id: None,
                });
            }
            let event: Value =
                serde_json::from_str(&data).map_err(|e| format!("chunk not JSON: {e}"))?;
            if let Some(delta) = delta_text(&event).filter(|d| !d.is_empty()) {
                sample.first_text.get_or_insert_with(|| begun.elapsed());
                text.push_str(delta);
            }
        }
    }
}
